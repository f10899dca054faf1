//go:build !race

package main

// raceEnabled is false when the tests run without -race; the daemon they
// start is built the same way.
const raceEnabled = false
