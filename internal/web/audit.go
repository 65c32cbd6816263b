package web

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/errs"
)

// auditPageSize is how many entries one page of the viewer shows.
const auditPageSize = 50

type auditView struct {
	ObjectType, Actor, Action string
	// ObjectIDs are the objects filtered on: one, or a change and its
	// rollout.
	ObjectIDs          []string
	Rows               []auditRow
	Total, First, Last int
	PrevURL, NextURL   string
	Filtered           bool
	// Zone names the time zone the times are shown in.
	Zone string
}

type auditRow struct {
	audit.Entry
	// Time is when the entry was made, in the policy's time zone.
	Time      when
	ObjectURL string
	// Changed names the top-level fields that differ between Before and
	// After, so an auditor sees what an update did without reading JSON.
	Changed       []string
	Before, After string // indented JSON
}

func (ui *UI) auditPage(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	// Several object_id values ask about related objects at once: a
	// change page links its change and its rollout this way.
	ids := slices.DeleteFunc(slices.Clone(q["object_id"]), func(s string) bool { return s == "" })
	v := auditView{ObjectType: q.Get("object_type"), ObjectIDs: ids, Actor: q.Get("actor"), Action: q.Get("action")}
	v.Filtered = v.ObjectType != "" || len(ids) > 0 || v.Actor != "" || v.Action != ""
	offset := 0
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errs.E(errs.Invalid, "offset must be a non-negative whole number")
		}
		offset = n
	}
	c, err := ui.siteClock(r.Context())
	if err != nil {
		return err
	}
	entries, total, err := ui.cfg.Audit.Entries(r.Context(), AuditQuery{ObjectType: v.ObjectType, ObjectIDs: ids,
		Actor: v.Actor, Action: v.Action, Limit: auditPageSize, Offset: offset})
	if err != nil {
		return err
	}
	v.Total, v.Zone = total, c.loc.String()
	for _, e := range entries {
		row := auditRow{Entry: e, Time: c.at(e.At), Before: indentJSON(e.Before), After: indentJSON(e.After), Changed: changedFields(e.Before, e.After)}
		if e.ObjectType == "asset" && e.ObjectID != "" && e.Action != "asset.delete" {
			row.ObjectURL = "/assets/" + url.PathEscape(e.ObjectID)
		}
		v.Rows = append(v.Rows, row)
	}
	if len(entries) > 0 {
		v.First, v.Last = offset+1, offset+len(entries)
	}
	if offset > 0 {
		v.PrevURL = pageURL(q, max(offset-auditPageSize, 0))
	}
	if offset+len(entries) < total {
		v.NextURL = pageURL(q, offset+len(entries))
	}
	ui.render(w, r, http.StatusOK, "audit", "Audit log", v)
	return nil
}

func indentJSON(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return string(b)
	}
	return buf.String()
}

// changedFields compares two JSON objects key by key. Non-objects and
// creations or deletions yield nothing: the full JSON is shown anyway.
func changedFields(before, after json.RawMessage) []string {
	if len(before) == 0 || len(after) == 0 {
		return nil
	}
	var b, a map[string]json.RawMessage
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil {
		return nil
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if !jsonEqual(a[k], b[k]) {
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func jsonEqual(x, y json.RawMessage) bool {
	var bx, by bytes.Buffer
	if json.Compact(&bx, x) != nil || json.Compact(&by, y) != nil {
		return bytes.Equal(x, y)
	}
	return bytes.Equal(bx.Bytes(), by.Bytes())
}

// ActorName is how the entry's actor is shown: the username, else the ID.
func (r auditRow) ActorName() string {
	return strings.TrimSpace(orDefault(r.Actor.Name, r.Actor.ID))
}
