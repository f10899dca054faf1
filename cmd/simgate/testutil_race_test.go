//go:build race

package main

// raceEnabled tells the hardware-in-loop harness to build the daemon with
// the race detector too, so a race in the real process fails the test.
const raceEnabled = true
