package modem

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/simgate/simgate/internal/gw"
	"github.com/simgate/simgate/modem/modemsim"
)

// Until the modem answers, its profile is not known: an IP Command fails
// saying the modem is not initialised yet, not that the profile has no
// sockets, and goes through once the data session is up.
func TestHILIPBeforeInit(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "quectel"})
	sim.Hang(time.Hour) // the modem is there but silent, as while it restarts
	h := runHIL(t, sim, ipModem(nil))
	err := h.s.SendUDP(context.Background(), []byte("x"))
	const want = "data session down: the modem is not initialised yet"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "profile") {
		t.Errorf("SendUDP before init = %v, want an error saying %q", err, want)
	}
	sim.Hang(0)
	h.dataUp()
	if err := h.s.SendUDP(context.Background(), []byte("x")); err != nil {
		t.Errorf("SendUDP once the data session is up = %v", err)
	}
}

// A profile without sockets is named in the error, once it is known.
func TestHILIPUnsupportedNamesProfile(t *testing.T) {
	sim := startSim(t, modemsim.Options{Profile: "generic", EmptyRead: "ok"})
	h := runHIL(t, sim, ipModem(nil))
	h.ready()
	h.event(gw.EventDataUnsupported)
	err := h.s.SendUDP(context.Background(), []byte("x"))
	const want = `data session down: the "generic" module profile has no sockets`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("SendUDP = %v, want an error saying %q", err, want)
	}
}
