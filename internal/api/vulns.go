package api

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/patchward/patchward/internal/advisory"
	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
	"github.com/patchward/patchward/internal/feeds"
	"github.com/patchward/patchward/internal/installed"
	"github.com/patchward/patchward/internal/match"
)

// HostEvaluator re-matches one asset after its software changed.
type HostEvaluator interface {
	EvaluateHost(ctx context.Context, assetID string) (match.Summary, error)
}

// SBOMResult reports an SBOM attached to an asset.
type SBOMResult struct {
	Format     string        `json:"format"`
	Subject    string        `json:"subject,omitempty"`
	Components int           `json:"components"`
	Software   int           `json:"software"`
	Findings   match.Summary `json:"findings"`
}

var findingStates = []match.State{match.StateOpen, match.StateFixed, match.StateNotAffected}

func (a *API) vulnRoutes() []Route {
	if a.Findings == nil || a.Advisories == nil {
		return nil
	}
	findingQuery := []Param{
		{Name: "state", Enum: enumStrings(findingStates)},
		{Name: "kev", Type: "boolean", Description: "only findings listed in CISA KEV"},
		{Name: "package"}, {Name: "vuln", Description: "vulnerability ID or alias"},
		{Name: "limit", Type: "integer"}, {Name: "offset", Type: "integer"},
	}
	return []Route{
		{Method: "GET", Path: "/findings", Tag: "findings", Summary: "List findings across the estate",
			Perm: auth.PermAssetRead, Query: append([]Param{{Name: "asset", Description: "asset ID"}}, findingQuery...),
			Resp: match.FindingPage{}, Handle: a.listFindings},
		{Method: "GET", Path: "/findings/{id}", Tag: "findings", Summary: "Get a finding with its lifecycle",
			Perm: auth.PermAssetRead, Resp: match.Finding{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Findings.Finding(r.Context(), r.PathValue("id")))
			}},
		{Method: "GET", Path: "/assets/{id}/findings", Tag: "findings", Summary: "List one asset's findings",
			Perm: auth.PermAssetRead, Query: findingQuery, Resp: match.FindingPage{}, Handle: a.listFindings},
		{Method: "POST", Path: "/assets/{id}/sbom", Tag: "assets",
			Summary: "Attach a device maker's SBOM (CycloneDX or SPDX JSON): it replaces the asset's software list, which is then matched",
			Perm:    auth.PermAssetWrite, BodyType: "application/json", Resp: SBOMResult{}, Handle: a.attachSBOM},
		{Method: "GET", Path: "/advisories", Tag: "advisories", Summary: "Search advisories by ID or alias prefix, package and ecosystem",
			Perm: auth.PermAssetRead, Query: []Param{{Name: "q", Description: "ID or alias prefix"}, {Name: "package"},
				{Name: "ecosystem"}, {Name: "limit", Type: "integer"}, {Name: "offset", Type: "integer"}},
			Resp: feeds.Page{}, Handle: a.searchAdvisories},
		{Method: "GET", Path: "/advisories/{id}", Tag: "advisories", Summary: "Get an advisory by ID or alias",
			Perm: auth.PermAssetRead, Resp: advisory.Advisory{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Advisories.Advisory(r.Context(), r.PathValue("id")))
			}},
		{Method: "GET", Path: "/feeds", Tag: "advisories", Summary: "Feed status: versions, record counts, last success and errors",
			Perm: auth.PermAssetRead, Resp: []feeds.Status{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Advisories.FeedStatus(r.Context()))
			}},
	}
}

func (a *API) listFindings(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	f := match.FindingFilter{AssetID: q.Get("asset"), Package: q.Get("package"), VulnID: q.Get("vuln")}
	if id := r.PathValue("id"); id != "" {
		if _, err := a.Inventory.Asset(r.Context(), id); err != nil {
			return err
		}
		f.AssetID = id
	}
	var err error
	if f.State, err = queryEnum(r, "state", findingStates); err != nil {
		return err
	}
	if f.KEV, err = queryBool(r, "kev"); err != nil {
		return err
	}
	if f.Limit, err = queryInt(r, "limit", 50); err != nil {
		return err
	}
	if f.Offset, err = queryInt(r, "offset", 0); err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Findings.Findings(r.Context(), f))
}

func (a *API) searchAdvisories(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", 50)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset", 0)
	if err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Advisories.SearchAdvisories(r.Context(),
		feeds.Query{ID: q.Get("q"), Package: q.Get("package"), Ecosystem: q.Get("ecosystem")}, min(limit, 500), offset))
}

// maxSBOM bounds an uploaded SBOM; the readers cap at the same size.
const maxSBOM = installed.MaxInputBytes

func (a *API) attachSBOM(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := requireType(r, "application/json"); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSBOM))
	if err != nil {
		return errs.E(errs.TooLarge, "SBOM is larger than %d bytes", maxSBOM)
	}
	sbom, err := installed.ParseSBOM(bytes.NewReader(body))
	if err != nil {
		return err
	}
	asset, err := a.Inventory.Asset(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	asset.Software = installed.Software(sbom.Packages())
	if asset.CPE == "" {
		// A firmware or device CPE from the SBOM identifies the asset for
		// NVD matching when the admin has not entered one.
		for _, c := range sbom.Components {
			if c.CPE != "" && (c.Type == "firmware" || c.Type == "operating-system" || c.Type == "device") {
				asset.CPE = c.CPE
				break
			}
		}
	}
	updated, err := a.Inventory.UpdateAsset(r.Context(), p.Actor(authn.ClientAddr(r)), asset.ID, asset)
	if err != nil {
		return err
	}
	res := SBOMResult{Format: string(sbom.Format), Subject: sbom.Name, Components: len(sbom.Components), Software: len(updated.Software)}
	if a.Evaluator != nil {
		if res.Findings, err = a.Evaluator.EvaluateHost(r.Context(), asset.ID); err != nil {
			return err
		}
	}
	WriteJSON(w, http.StatusOK, res)
	return nil
}
