package audit

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in       string
		endOfDay bool
		want     time.Time
	}{
		{"2026-03-31", false, time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"2026-03-31", true, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-03-31T10:00:00+02:00", true, time.Date(2026, 3, 31, 8, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, tt.endOfDay)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q, %v) = %v, %v; want %v", tt.in, tt.endOfDay, got, err, tt.want)
		}
	}
	if _, err := ParseTime("yesterday", false); err == nil {
		t.Errorf("ParseTime(yesterday) = nil error; want Invalid")
	}
}
