package modem

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/simgate/simgate/modem/at"
)

// The backlog keeps URCs in order and, past at.MaxQueuedURCBytes, drops
// the oldest; one URC larger than the bound alone is still kept.
func TestSessionBacklogBounded(t *testing.T) {
	s := NewSession(Config{Port: "/dev/null"}, nil)
	big := make([]byte, at.MaxQueuedURCBytes/4)
	var want []string
	for i := range 10 {
		u := at.URC{Line: fmt.Sprintf("+QIURC: \"recv\",%d", i), Data: big}
		s.putBack(u)
		if i >= 7 { // four of them exceed the bound with the overhead
			want = append(want, u.Line)
		}
	}
	var got []string
	for _, u := range s.takeWaitingBacklog() {
		got = append(got, u.Line)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backlog (-want +got):\n%s", diff)
	}

	huge := at.URC{Line: "+QIURC: \"recv\",99", Data: make([]byte, 2*at.MaxQueuedURCBytes)}
	s.putBack(at.URC{Line: "RING"})
	s.putBack(huge)
	if u, ok := s.nextURC(); !ok || u.Line != huge.Line {
		t.Errorf("nextURC() = %q, %v; want the one URC larger than the bound", u.Line, ok)
	}
}
