package agentapi

// ResultResponse acknowledges a job result. Duplicate is true when the
// server already had this (job, attempt) and changed nothing: the agent may
// forget the result either way.
type ResultResponse struct {
	Duplicate bool `json:"duplicate"`
}
