//go:build race

package password

// raceEnabled is true under -race, where sync.Pool deliberately drops some
// objects and allocation counts mean little.
const raceEnabled = true
