// caddyregister: tests for the memory-mapped Scratch on Linux.

//go:build linux

package argon2

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	xargon2 "golang.org/x/crypto/argon2"
)

// mapping returns the /proc/self/smaps entry (header and fields) of the
// mapping that holds addr, or "" if none does.
func mapping(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatalf("open smaps: %v", err)
	}
	defer f.Close()
	var cur strings.Builder
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 { // a mapping's header line
			if found {
				return cur.String()
			}
			cur.Reset()
			found = lo <= addr && addr < hi
		}
		if found {
			cur.WriteString(line + "\n")
		}
	}
	if found {
		return cur.String()
	}
	return ""
}

func smapsField(entry, name string) int {
	for line := range strings.Lines(entry) {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			return kb
		}
	}
	return -1
}

func thpMode(t *testing.T) string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return "unavailable"
	}
	s := string(b)
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	return strings.TrimSpace(s)
}

// TestScratchHugePages: the default parameters' 19 MiB are a mapping of
// their own, aligned to 2 MiB, marked for huge pages and, where the kernel
// grants them to memory that asks, backed by them once hashed in; and the
// hash is still upstream's.
func TestScratchHugePages(t *testing.T) {
	const memory = 19 * 1024
	s := NewScratch(memory, 1)
	defer runtime.KeepAlive(s) // its mapping is inspected by address
	addr := uintptr(unsafe.Pointer(&s.b[0]))
	if addr%hugePage != 0 {
		t.Errorf("scratch at %#x: not aligned to 2 MiB", addr)
	}
	pw, salt := []byte("correct horse battery staple"), []byte("0123456789abcdef")
	got := IDKeyInto(s, pw, salt, 2, memory, 1, 32)
	if want := xargon2.IDKey(pw, salt, 2, memory, 1, 32); !bytes.Equal(got, want) {
		t.Fatalf("IDKeyInto on mapped memory = %x, want %x", got, want)
	}
	entry := mapping(t, addr)
	if entry == "" {
		t.Fatalf("no mapping holds the scratch at %#x", addr)
	}
	mode := thpMode(t)
	if mode == "unavailable" {
		// A kernel without THP refuses the advice; the memory is ordinary.
		t.Logf("no transparent huge pages on this kernel; scratch mapping:\n%s", entry)
		return
	}
	if !strings.Contains(entry, "VmFlags:") || !strings.Contains(entry[strings.Index(entry, "VmFlags:"):], " hg") {
		t.Errorf("scratch mapping not advised MADV_HUGEPAGE:\n%s", entry)
	}
	huge := smapsField(entry, "AnonHugePages")
	switch mode {
	case "always", "madvise":
		// Whole 2 MiB pages inside 19 MiB: at least 18 MiB, unless the
		// kernel could not find free huge pages (fragmented memory).
		if huge < 18*1024 {
			t.Logf("THP %q but only %d kB of the scratch in huge pages (memory fragmented?)", mode, huge)
		}
		if huge <= 0 {
			t.Errorf("THP %q but the scratch has no huge pages:\n%s", mode, entry)
		}
	default:
		t.Logf("THP %q: the scratch uses ordinary pages (%d kB huge)", mode, huge)
	}
}

// TestScratchUnmapped: a collected Scratch gives its mapping back.
func TestScratchUnmapped(t *testing.T) {
	s := NewScratch(4096, 1)
	addr := uintptr(unsafe.Pointer(&s.b[0]))
	entry := mapping(t, addr)
	if entry == "" {
		t.Fatal("new scratch is not mapped")
	}
	header, _, _ := strings.Cut(entry, "\n")
	s = nil
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run on their own goroutine
		// Gone, or the address reused by a different mapping.
		if e := mapping(t, addr); e == "" || !strings.HasPrefix(e, header+"\n") {
			return
		}
	}
	t.Fatalf("mapping at %#x still present 5s after its scratch became garbage", addr)
}
