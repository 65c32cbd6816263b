package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/inventory"
)

// The asset form keeps every value as the text the user typed (url.Values),
// so a rejected form comes back exactly as submitted, and maps it onto an
// inventory.Asset only to save. Form field names are the asset's JSON names,
// which are also the field names in the inventory's validation errors, so
// each error lands next to its own field.

// formField is one input of the asset form.
type formField struct {
	Name, Label string
	// Kind is text, textarea, select, checkbox, checkboxes, date or number.
	Kind     string
	Value    string
	Checked  bool
	Options  []option
	Hint     string
	Error    string
	Required bool
}

// ID is the element id that the field's label points at.
func (f formField) ID() string { return "f-" + f.Name }

type formSection struct {
	Title  string
	Fields []formField
}

type assetFormView struct {
	New      bool
	Action   string
	CancelTo string
	Name     string // the stored name, for the heading of an edit
	Revision int
	Sections []formSection
	// Message is a form-wide problem, e.g. a lost update; Other holds
	// field errors that have no input on this form.
	Message    string
	Other      []string
	ErrorCount int
	// Software is how many packages the asset has; the form leaves them
	// alone and says so.
	Software int
}

const dateLayout = "2006-01-02"

// assetValues is the form's text for a.
func assetValues(a inventory.Asset) url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	for k, s := range map[string]string{
		"name": a.Name, "type": string(a.Type), "hostname": a.Hostname, "make": a.Make, "model": a.Model,
		"serial": a.Serial, "asset_tag": a.AssetTag, "os_name": a.OSName, "os_version": a.OSVersion,
		"firmware_version": a.FirmwareVersion, "cpe": a.CPE, "site_id": a.SiteID, "location": a.Location,
		"network_zone": a.NetworkZone, "exposure": string(a.Exposure), "mac_address": a.MACAddress,
		"business_owner": a.BusinessOwner, "technical_owner": a.TechnicalOwner,
		"data_classification": string(a.DataClass), "criticality": string(a.Criticality),
		"patient_safety_impact": string(a.SafetyImpact), "vendor_patch_restriction": string(a.Restriction),
		"vendor_patch_notes": a.RestrictionNotes, "maintenance_window": a.MaintenanceWindow,
		"patch_source": a.PatchSource, "support_status": string(a.SupportStatus), "purchase_ref": a.PurchaseRef,
		"notes": a.Notes, "ip_addresses": strings.Join(a.IPAddresses, ", "), "tags": strings.Join(a.Tags, ", "),
		"pending_updates": strconv.Itoa(a.PendingUpdates),
	} {
		set(k, s)
	}
	for k, t := range map[string]*time.Time{"end_of_support": a.EndOfSupport, "last_patched_at": a.LastPatchedAt, "purchased_at": a.PurchasedAt} {
		if t != nil {
			v.Set(k, t.UTC().Format(dateLayout))
		}
	}
	if a.HandlesPHI {
		v.Set("handles_phi", "on")
	}
	if a.RegulatedDevice {
		v.Set("regulated_device", "on")
	}
	v["groups"] = slices.Clone(a.Groups)
	return v
}

// applyValues copies the form's editable fields onto base and returns the
// result, with per-field messages for text that is not a date or a number.
// Fields the form does not show (software, source, last seen) keep base's
// values, so saving the form never drops what an agent reported.
func applyValues(v url.Values, base inventory.Asset) (inventory.Asset, map[string]string) {
	a := base
	bad := map[string]string{}
	for k, p := range map[string]*string{
		"name": &a.Name, "hostname": &a.Hostname, "make": &a.Make, "model": &a.Model, "serial": &a.Serial,
		"asset_tag": &a.AssetTag, "os_name": &a.OSName, "os_version": &a.OSVersion,
		"firmware_version": &a.FirmwareVersion, "cpe": &a.CPE, "site_id": &a.SiteID, "location": &a.Location,
		"network_zone": &a.NetworkZone, "mac_address": &a.MACAddress, "business_owner": &a.BusinessOwner,
		"technical_owner": &a.TechnicalOwner, "vendor_patch_notes": &a.RestrictionNotes,
		"maintenance_window": &a.MaintenanceWindow, "patch_source": &a.PatchSource,
		"purchase_ref": &a.PurchaseRef, "notes": &a.Notes,
	} {
		*p = v.Get(k)
	}
	a.Type = inventory.Type(v.Get("type"))
	a.Exposure = inventory.Exposure(v.Get("exposure"))
	a.DataClass = inventory.Classification(v.Get("data_classification"))
	a.Criticality = inventory.Level(v.Get("criticality"))
	a.SafetyImpact = inventory.SafetyImpact(v.Get("patient_safety_impact"))
	a.Restriction = inventory.Restriction(v.Get("vendor_patch_restriction"))
	a.SupportStatus = inventory.Support(v.Get("support_status"))
	a.HandlesPHI = v.Get("handles_phi") != ""
	a.RegulatedDevice = v.Get("regulated_device") != ""
	a.IPAddresses = splitList(v.Get("ip_addresses"))
	a.Tags = splitList(v.Get("tags"))
	a.Groups = nil
	for _, g := range v["groups"] {
		if g != "" {
			a.Groups = append(a.Groups, g)
		}
	}
	a.PendingUpdates = 0
	if s := strings.TrimSpace(v.Get("pending_updates")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			bad["pending_updates"] = "must be a whole number"
		}
		a.PendingUpdates = n
	}
	for k, p := range map[string]**time.Time{"end_of_support": &a.EndOfSupport, "last_patched_at": &a.LastPatchedAt, "purchased_at": &a.PurchasedAt} {
		t, err := parseDate(v.Get(k), *p)
		if err != nil {
			bad[k] = "must be a date (YYYY-MM-DD)"
		}
		*p = t
	}
	return a, bad
}

// parseDate reads a date input. An unchanged date keeps the stored time of
// day, so opening and saving the form does not truncate "last patched" to
// midnight.
func parseDate(s string, current *time.Time) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if current != nil && current.UTC().Format(dateLayout) == s {
		return current, nil
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// splitList splits a comma-, space- or newline-separated list.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// buildForm lays out every editable field with v's values and the errors.
func buildForm(v url.Values, fieldErrs map[string]string, sites []inventory.Site, groups []inventory.Group) ([]formSection, []string) {
	used := map[string]bool{}
	text := func(name, lbl, hint string) formField {
		used[name] = true
		return formField{Name: name, Label: lbl, Kind: "text", Value: v.Get(name), Hint: hint, Error: fieldErrs[name]}
	}
	kind := func(f formField, k string) formField { f.Kind = k; return f }
	sel := func(name, lbl string, opts []option) formField {
		f := text(name, lbl, "")
		f.Kind, f.Options = "select", opts
		return f
	}
	check := func(name, lbl, hint string) formField {
		f := text(name, lbl, hint)
		f.Kind, f.Checked, f.Value = "checkbox", v.Get(name) != "", "on"
		return f
	}
	siteOpts := []option{{Value: "", Label: "No site", Selected: v.Get("site_id") == ""}}
	for _, s := range sites {
		siteOpts = append(siteOpts, option{Value: s.ID, Label: s.Name, Selected: s.ID == v.Get("site_id")})
	}
	var groupOpts []option
	for _, g := range groups {
		groupOpts = append(groupOpts, option{Value: g.ID, Label: g.Name, Selected: slices.Contains(v["groups"], g.ID)})
	}
	name := text("name", "Name", "")
	name.Required = true
	groupField := text("groups", "Groups", "")
	groupField.Kind, groupField.Options = "checkboxes", groupOpts

	sections := []formSection{
		{"Identity", []formField{name,
			sel("type", "Type", enumOptions(inventory.Types, v.Get("type"))),
			text("hostname", "Hostname", ""), text("make", "Make", ""), text("model", "Model", ""),
			text("serial", "Serial number", ""), text("asset_tag", "Asset tag", ""),
			text("os_name", "Operating system", ""), text("os_version", "OS version", ""),
			text("firmware_version", "Firmware version", ""),
			text("cpe", "CPE", "For devices without a package list, e.g. cpe:2.3:o:vendor:product:1.0:*:*:*:*:*:*:*"),
		}},
		{"Location and network", []formField{
			sel("site_id", "Site", siteOpts), text("location", "Location", "Building, room, rack"),
			text("network_zone", "Network zone", ""),
			sel("exposure", "Exposure", enumOptions(inventory.Exposures, v.Get("exposure"))),
			text("ip_addresses", "IP addresses", "Separate with commas or spaces"),
			text("mac_address", "MAC address", "aa:bb:cc:dd:ee:ff"),
		}},
		{"Ownership", []formField{
			text("business_owner", "Business owner", ""), text("technical_owner", "Technical owner", ""),
		}},
		{"Risk", []formField{
			check("handles_phi", "Handles PHI", "Stores or transmits protected health information"),
			sel("data_classification", "Data classification", enumOptions(inventory.Classifications, v.Get("data_classification"))),
			sel("criticality", "Business criticality", enumOptions(inventory.Levels, v.Get("criticality"))),
			sel("patient_safety_impact", "Patient-safety impact", enumOptions(inventory.SafetyImpacts, v.Get("patient_safety_impact"))),
			check("regulated_device", "Regulated medical device", "Vendor patching restrictions apply"),
			sel("vendor_patch_restriction", "Vendor patch restriction", enumOptions(inventory.Restrictions, v.Get("vendor_patch_restriction"))),
			kind(text("vendor_patch_notes", "Vendor restriction notes", ""), "textarea"),
		}},
		{"Lifecycle", []formField{
			text("maintenance_window", "Maintenance window", "e.g. Sun 02:00-04:00"),
			text("patch_source", "Patch source", "e.g. WSUS, vendor portal"),
			sel("support_status", "Support status", enumOptions(inventory.Supports, v.Get("support_status"))),
			kind(text("end_of_support", "End of support", "Required when support has ended"), "date"),
			kind(text("last_patched_at", "Last patched", ""), "date"),
			kind(text("pending_updates", "Pending updates", ""), "number"),
			text("purchase_ref", "Purchase reference", ""),
			kind(text("purchased_at", "Purchased", ""), "date"),
		}},
		{"Tags, groups and notes", []formField{
			text("tags", "Tags", "Lower-case words separated by commas"),
			groupField,
			kind(text("notes", "Notes", ""), "textarea"),
		}},
	}
	var other []string
	for k, msg := range fieldErrs {
		if !used[k] {
			other = append(other, label(k)+": "+msg)
		}
	}
	slices.Sort(other)
	return sections, other
}

func (ui *UI) renderAssetForm(w http.ResponseWriter, r *http.Request, status int, fv assetFormView, v url.Values, fieldErrs map[string]string) error {
	ctx := r.Context()
	sites, err := ui.cfg.Inventory.Sites(ctx)
	if err != nil {
		return err
	}
	groups, err := ui.cfg.Inventory.Groups(ctx)
	if err != nil {
		return err
	}
	fv.Sections, fv.Other = buildForm(v, fieldErrs, sites, groups)
	fv.ErrorCount = len(fieldErrs)
	title := "New asset"
	if !fv.New {
		title = "Edit " + fv.Name
	}
	ui.render(w, r, status, "asset_form", title, fv)
	return nil
}

func (ui *UI) newAsset(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	a := inventory.Asset{Source: inventory.SourceManual}
	a.Normalize() // the defaults a new asset gets anyway
	return ui.renderAssetForm(w, r, http.StatusOK, assetFormView{New: true, Action: "/assets/new", CancelTo: "/assets"}, assetValues(a), nil)
}

func (ui *UI) createAsset(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	fv := assetFormView{New: true, Action: "/assets/new", CancelTo: "/assets"}
	a, bad := applyValues(r.PostForm, inventory.Asset{Source: inventory.SourceManual})
	if len(bad) > 0 {
		return ui.renderAssetForm(w, r, http.StatusBadRequest, fv, r.PostForm, bad)
	}
	out, err := ui.cfg.Inventory.CreateAsset(r.Context(), p.Actor(authn.ClientAddr(r)), a)
	if err != nil {
		return ui.formError(w, r, fv, err)
	}
	http.Redirect(w, r, "/assets/"+url.PathEscape(out.ID)+"?saved=1", http.StatusSeeOther)
	return nil
}

func (ui *UI) editAsset(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	a, err := ui.cfg.Inventory.Asset(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return ui.renderAssetForm(w, r, http.StatusOK, editView(a), assetValues(a), nil)
}

func editView(a inventory.Asset) assetFormView {
	base := "/assets/" + url.PathEscape(a.ID)
	return assetFormView{Action: base + "/edit", CancelTo: base, Name: a.Name, Revision: a.Revision, Software: len(a.Software)}
}

func (ui *UI) updateAsset(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return errs.Wrap(errs.Invalid, err, "the form could not be read")
	}
	current, err := ui.cfg.Inventory.Asset(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	// The revision the user's form was built from, not the current one:
	// otherwise a change made meanwhile would be silently overwritten.
	rev, err := strconv.Atoi(r.PostForm.Get("revision"))
	if err != nil || rev < 1 {
		return errs.E(errs.Invalid, "the form is missing its revision; open the edit page again")
	}
	fv := editView(current)
	fv.Revision = rev
	a, bad := applyValues(r.PostForm, current)
	if len(bad) > 0 {
		return ui.renderAssetForm(w, r, http.StatusBadRequest, fv, r.PostForm, bad)
	}
	a.Revision = rev
	out, err := ui.cfg.Inventory.UpdateAsset(r.Context(), p.Actor(authn.ClientAddr(r)), current.ID, a)
	if err != nil {
		return ui.formError(w, r, fv, err)
	}
	http.Redirect(w, r, "/assets/"+url.PathEscape(out.ID)+"?saved=1", http.StatusSeeOther)
	return nil
}

// formError re-renders the form with the user's input for errors the user
// can fix (validation, a lost update); anything else is an error page.
func (ui *UI) formError(w http.ResponseWriter, r *http.Request, fv assetFormView, err error) error {
	switch errs.KindOf(err) {
	case errs.Invalid:
		fields := errs.FieldsOf(err)
		if len(fields) == 0 {
			fv.Message = errs.Public(err)
		}
		return ui.renderAssetForm(w, r, http.StatusBadRequest, fv, r.PostForm, fields)
	case errs.Conflict:
		fv.Message = errs.Public(err)
		return ui.renderAssetForm(w, r, http.StatusConflict, fv, r.PostForm, nil)
	}
	return err
}
