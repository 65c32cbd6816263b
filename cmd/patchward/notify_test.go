package main

import (
	"testing"

	"github.com/patchward/patchward/internal/notify"
)

// TestNotifiers: the serve flags name the channels; a bad one stops
// start-up rather than the first halted rollout.
func TestNotifiers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       serveFlags
		want    int // channels; -1 an error
		wantNil bool
	}{
		{name: "none", wantNil: true},
		{name: "mail", f: serveFlags{smtpURL: "smtp://relay.clinic.test", notifyFrom: "pw@clinic.test", notifyTo: "it@clinic.test"}, want: 1},
		{name: "mail and two webhooks", f: serveFlags{smtpURL: "smtp://relay.clinic.test", notifyFrom: "pw@clinic.test", notifyTo: "it@clinic.test",
			webhooks: "https://chat.clinic.test/hooks/a, https://pager.clinic.test/b"}, want: 3},
		{name: "webhook only", f: serveFlags{webhooks: "https://chat.clinic.test/hooks/a"}, want: 1},
		{name: "bad webhook", f: serveFlags{webhooks: "chat.clinic.test/hooks/a"}, want: -1},
		{name: "bad mail", f: serveFlags{smtpURL: "smtp://relay.clinic.test", notifyFrom: "nobody"}, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := notifiers(&tc.f)
			switch {
			case tc.want < 0:
				if err == nil {
					t.Fatalf("notifiers accepted %+v", tc.f)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.wantNil:
				if n != nil {
					t.Fatalf("notifiers = %#v; want none", n)
				}
				return
			}
			got := 1
			if all, ok := n.(notify.All); ok {
				got = len(all)
			}
			if got != tc.want {
				t.Errorf("%d channels; want %d", got, tc.want)
			}
		})
	}
}
