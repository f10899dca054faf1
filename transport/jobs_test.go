package transport

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func jobIDs(t *testing.T, q *Queue, lane string) []string {
	t.Helper()
	var out []string
	// Read the lane by finishing its head until it is empty.
	for {
		sj, ok, err := q.HeadJob(context.Background(), lane)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, sj.ID)
		if err := q.FinishJob(context.Background(), sj, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Lanes are separate FIFOs; ids are deduplicated while queued and after
// they are finished; jobs survive a reopen.
func TestJobsLanesOrderDedupAndRestart(t *testing.T) {
	dir := t.TempDir()
	q := openTestQueue(t, dir, 0)
	ctx := context.Background()
	var jobs []Job
	for i := range 5 {
		jobs = append(jobs, Job{Lane: "b", ID: fmt.Sprintf("b%d", i), Body: []byte("x")}, Job{Lane: "a", ID: fmt.Sprintf("a%d", i)})
	}
	jobs = append(jobs, Job{Lane: "a", ID: "a0"})
	out, err := q.AddJobs(ctx, jobs, []Publication{{Key: "k", Topic: "t", Payload: []byte("p")}})
	if err != nil {
		t.Fatal(err)
	}
	if out[len(out)-1] != JobDuplicate || out[0] != JobQueued {
		t.Errorf("outcomes %v", out)
	}
	if st := q.Stats(); st.Jobs != 10 || st.Publications != 1 {
		t.Errorf("stats %+v", st)
	}
	lanes, err := q.JobLanes()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, lanes); diff != "" {
		t.Errorf("lanes (-want +got):\n%s", diff)
	}
	sj, _, _ := q.HeadJob(ctx, "b")
	if err := q.UpdateJob(ctx, sj, []byte("attempted")); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTestQueue(t, dir, 0)
	if st := q.Stats(); st.Jobs != 10 || st.Publications != 1 {
		t.Errorf("stats after reopen %+v", st)
	}
	sj, _, _ = q.HeadJob(ctx, "b")
	if sj.ID != "b0" || string(sj.Body) != "attempted" {
		t.Errorf("head of b after reopen %+v", sj)
	}
	if diff := cmp.Diff([]string{"a0", "a1", "a2", "a3", "a4"}, jobIDs(t, q, "a")); diff != "" {
		t.Errorf("lane a (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b0", "b1", "b2", "b3", "b4"}, jobIDs(t, q, "b")); diff != "" {
		t.Errorf("lane b (-want +got):\n%s", diff)
	}
	out, err = q.AddJobs(ctx, []Job{{Lane: "a", ID: "a3"}}, nil)
	if err != nil || out[0] != JobDuplicate {
		t.Errorf("finished id queued again: %v %v", out, err)
	}
	if _, err := q.AddJobs(ctx, []Job{{Lane: "a\x00b", ID: "z"}}, nil); err == nil {
		t.Error("lane with NUL accepted")
	}
}

// Publications come back in commit order, a repeated key is stored once,
// and acknowledged ones are gone; the bound refuses jobs, never
// publications.
func TestPublicationsDedupOrderAndBound(t *testing.T) {
	q := openTestQueue(t, t.TempDir(), 2)
	ctx := context.Background()
	for i := range 3 {
		if err := q.AddPublications(ctx, []Publication{{Key: "r/1/queued", Topic: "t", Payload: []byte("dup")}, {Topic: "t", Payload: []byte(fmt.Sprint(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := q.PublicationsAfter(nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, string(p.Payload))
	}
	if diff := cmp.Diff([]string{"dup", "0", "1", "2"}, got); diff != "" {
		t.Errorf("publications (-want +got):\n%s", diff)
	}
	if seen, err := q.Seen("r/1/queued"); err != nil || !seen {
		t.Errorf("Seen = %v, %v", seen, err)
	}
	rest, err := q.PublicationsAfter(ps[1].Position(), 10)
	if err != nil || len(rest) != 2 || string(rest[0].Payload) != "1" {
		t.Errorf("after the second: %v %v", rest, err)
	}
	if err := q.AckPublications(ctx, ps[:2]); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Publications != 2 {
		t.Errorf("publications left %d, want 2", st.Publications)
	}
	out, err := q.AddJobs(ctx, []Job{{Lane: "a", ID: "1"}, {Lane: "a", ID: "2"}, {Lane: "a", ID: "3"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]JobOutcome{JobQueued, JobQueued, JobFull}, out); diff != "" {
		t.Errorf("outcomes at the bound (-want +got):\n%s", diff)
	}
	if _, err := q.AddJobs(ctx, nil, []Publication{{Topic: ""}}); err == nil || errors.Is(err, ErrQueueFull) {
		t.Errorf("publication without topic: %v", err)
	}
}
