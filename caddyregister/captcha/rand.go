package captcha

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
)

// cryptoSource is a math/rand/v2 Source reading crypto/rand, so every
// random choice (the answer characters as well as the distortion, which a
// bot could otherwise predict and undo) is unpredictable. It buffers reads
// because one image takes a few hundred draws. Not safe for concurrent use:
// each Generate call makes its own.
type cryptoSource struct {
	buf [512]byte
	off int
}

func newRand() *rand.Rand {
	s := &cryptoSource{}
	s.off = len(s.buf)
	return rand.New(s)
}

// Uint64 implements rand.Source.
func (s *cryptoSource) Uint64() uint64 {
	if s.off+8 > len(s.buf) {
		// Since Go 1.24 crypto/rand.Read never returns an error: it
		// crashes the program irrecoverably if the OS cannot provide
		// randomness, so there is nothing to handle here.
		_, _ = crand.Read(s.buf[:])
		s.off = 0
	}
	v := binary.LittleEndian.Uint64(s.buf[s.off:])
	s.off += 8
	return v
}
