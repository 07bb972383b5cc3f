package port_test

import "runtime"

// heapInUse is the live heap after a collection (bytes allocated and still reachable).
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
