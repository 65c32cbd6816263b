// Package agenttest is a minimal in-memory Patchward server for testing the
// agent: it speaks the real wire protocol (enrollment, Ed25519-signed
// check-ins, job pulls, result uploads) and verifies every signature
// exactly as agentapi describes, but keeps everything in memory so agent
// tests need no database.
package agenttest

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/agentapi"
)

// Server is the fake. Its exported fields may be set before use; the
// methods are safe for concurrent use.
type Server struct {
	// Token is the one accepted enrollment token (used once).
	Token string
	// NextCheckIn is sent in every check-in answer.
	NextCheckIn time.Duration
	// Window is sent in every check-in answer when set.
	Window *agentapi.Window
	// Now is the server clock for the signature's time check.
	Now func() time.Time

	mu        sync.Mutex
	keys      map[string]ed25519.PublicKey
	hash      map[string]string
	jobs      map[string][]agentapi.Job
	results   []agentapi.JobResult
	checkIns  []agentapi.CheckInRequest
	rejected  []string
	tokenUsed bool
	wantInv   bool
	seq       int
}

// New returns a server accepting token.
func New(token string) *Server {
	return &Server{Token: token, NextCheckIn: time.Minute,
		keys: map[string]ed25519.PublicKey{}, hash: map[string]string{}, jobs: map[string][]agentapi.Job{}}
}

// AddJob queues a job for an agent; it is offered until a result arrives.
func (s *Server) AddJob(agentID string, j agentapi.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[agentID] = append(s.jobs[agentID], j)
}

// AskInventory makes the next check-in answer ask for the full inventory.
func (s *Server) AskInventory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wantInv = true
}

// Results returns the results received, in order (re-sent ones included).
func (s *Server) Results() []agentapi.JobResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agentapi.JobResult(nil), s.results...)
}

// CheckIns returns the check-ins received.
func (s *Server) CheckIns() []agentapi.CheckInRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]agentapi.CheckInRequest(nil), s.checkIns...)
}

// Rejected lists why requests were refused (bad signatures, stale times).
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

// AgentIDs lists enrolled agents.
func (s *Server) AgentIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.keys {
		out = append(out, id)
	}
	return out
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handler serves /agent/v1/*.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentapi.PathEnroll, s.enroll)
	mux.Handle("POST "+agentapi.PathCheckIn, s.signed(s.checkIn))
	mux.Handle("GET "+agentapi.PathJobs, s.signed(s.pull))
	mux.Handle("POST "+agentapi.PathJobResult, s.signed(s.result))
	return mux
}

func (s *Server) fail(w http.ResponseWriter, code int, msg string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, msg)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	var req agentapi.EnrollRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, agentapi.MaxEnrollBody)).Decode(&req); err != nil {
		s.fail(w, http.StatusBadRequest, "bad enrollment: "+err.Error())
		return
	}
	if err := req.Validate(); err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	if req.Token != s.Token || s.tokenUsed {
		s.mu.Unlock()
		s.fail(w, http.StatusUnauthorized, "enrollment token unknown, used or expired")
		return
	}
	s.tokenUsed = true
	s.seq++
	id := fmt.Sprintf("agent-%d", s.seq)
	s.keys[id] = ed25519.PublicKey(req.PublicKey)
	s.mu.Unlock()
	reply(w, agentapi.EnrollResponse{AgentID: id, AssetID: "asset-" + id, CheckInInterval: agentapi.Duration{Duration: s.NextCheckIn}})
}

// signed verifies the agent's signature over method, path, timestamp and
// body before calling fn.
func (s *Server) signed(fn func(http.ResponseWriter, *http.Request, string, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, agentapi.MaxCheckInBody+1))
		if err != nil || len(body) > agentapi.MaxCheckInBody {
			s.fail(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		if r.Header.Get(agentapi.HeaderProtocol) != strconv.Itoa(agentapi.ProtocolVersion) {
			s.fail(w, http.StatusBadRequest, "unknown protocol version")
			return
		}
		id := r.Header.Get(agentapi.HeaderAgent)
		s.mu.Lock()
		key, ok := s.keys[id]
		s.mu.Unlock()
		if !ok {
			s.fail(w, http.StatusUnauthorized, "unknown agent")
			return
		}
		secs, err := strconv.ParseInt(r.Header.Get(agentapi.HeaderTimestamp), 10, 64)
		ts := time.Unix(secs, 0)
		if err != nil || ts.Sub(s.now()).Abs() > agentapi.MaxClockSkew {
			s.fail(w, http.StatusUnauthorized, "timestamp outside the allowed skew")
			return
		}
		sig, err := base64.StdEncoding.DecodeString(r.Header.Get(agentapi.HeaderSignature))
		if err != nil || !ed25519.Verify(key, []byte(agentapi.SigningString(r.Method, r.URL.Path, ts, body)), sig) {
			s.fail(w, http.StatusUnauthorized, "bad signature")
			return
		}
		fn(w, r, id, body)
	})
}

func (s *Server) checkIn(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	var req agentapi.CheckInRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.fail(w, http.StatusBadRequest, "bad check-in: "+err.Error())
		return
	}
	if err := req.Validate(); err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkIns = append(s.checkIns, req)
	if req.Inventory != nil {
		if got := agentapi.InventoryHash(req.Inventory); got != req.InventoryHash {
			s.mu.Unlock()
			s.fail(w, http.StatusBadRequest, "inventory does not match its hash")
			s.mu.Lock()
			return
		}
		s.hash[id] = req.InventoryHash
	}
	resp := agentapi.CheckInResponse{
		InventoryWanted: s.wantInv || s.hash[id] != req.InventoryHash,
		JobsAvailable:   len(s.jobs[id]) > 0,
		NextCheckIn:     agentapi.Duration{Duration: s.NextCheckIn},
		Window:          s.Window,
	}
	s.wantInv = false
	reply(w, resp)
}

func (s *Server) pull(w http.ResponseWriter, r *http.Request, id string, _ []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply(w, agentapi.JobsResponse{Jobs: append([]agentapi.Job{}, s.jobs[id]...)})
}

func (s *Server) result(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	var res agentapi.JobResult
	if err := json.Unmarshal(body, &res); err != nil {
		s.fail(w, http.StatusBadRequest, "bad result: "+err.Error())
		return
	}
	if err := res.Validate(); err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if res.JobID != r.PathValue("id") {
		s.fail(w, http.StatusBadRequest, "job id in path and body differ")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results = append(s.results, res)
	var left []agentapi.Job
	for _, j := range s.jobs[id] {
		if j.ID != res.JobID {
			left = append(left, j)
		}
	}
	s.jobs[id] = left
	w.WriteHeader(http.StatusNoContent)
}
