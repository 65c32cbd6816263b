package api

import (
	"net/http"
	"time"

	"github.com/patchward/patchward/internal/auth"
	"github.com/patchward/patchward/internal/authn"
	"github.com/patchward/patchward/internal/errs"
)

// LoginRequest signs in with a username and password.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// PasswordChange is a user's request to change their own password.
type PasswordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// PasswordReset is an admin's request to set someone's password.
type PasswordReset struct {
	Password string `json:"password"`
}

// NewUserRequest creates a user.
type NewUserRequest struct {
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name,omitempty"`
	Role        auth.Role `json:"role"`
	Password    string    `json:"password"`
	// PolicyRoles are the policy roles the user holds from the start;
	// each must grant Role.
	PolicyRoles []string `json:"policy_roles,omitempty"`
}

// PolicyRolesRequest replaces the policy roles a user holds (it-manager,
// laboratory-director...): approving or signing off as one takes holding
// it. Each must be a role of the policy in force that grants the user's
// Patchward role; an empty list takes them all away.
type PolicyRolesRequest struct {
	PolicyRoles []string `json:"policy_roles"`
}

// UserPatch changes some of a user's fields.
type UserPatch struct {
	DisplayName *string    `json:"display_name,omitempty"`
	Role        *auth.Role `json:"role,omitempty"`
	Disabled    *bool      `json:"disabled,omitempty"`
}

// NewTokenRequest creates an API token for the caller.
type NewTokenRequest struct {
	Name string `json:"name"`
	// ExpiresInDays is the token's lifetime; 0 means it never expires.
	ExpiresInDays int `json:"expires_in_days"`
}

// NewTokenResponse carries the token's secret, shown only this once.
type NewTokenResponse struct {
	Token  string     `json:"token"`
	Detail auth.Token `json:"detail"`
}

const maxTokenDays = 3650

func (a *API) accountRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/session", Tag: "session", Summary: "Sign in; sets the session cookie", Perm: PermPublic,
			Body: LoginRequest{}, Resp: auth.Principal{}, Handle: a.login},
		{Method: "DELETE", Path: "/session", Tag: "session", Summary: "Sign out of this browser session", Perm: auth.PermAuthenticated,
			Status: http.StatusNoContent, Handle: a.logout},
		{Method: "GET", Path: "/me", Tag: "me", Summary: "Who am I", Perm: auth.PermAuthenticated, Resp: auth.Principal{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				WriteJSON(w, http.StatusOK, p)
				return nil
			}},
		{Method: "PUT", Path: "/me/password", Tag: "me", Summary: "Change my password (ends my sessions)", Perm: auth.PermAuthenticated,
			Body: PasswordChange{}, Status: http.StatusNoContent, Handle: a.changePassword},
		{Method: "GET", Path: "/me/tokens", Tag: "me", Summary: "List my API tokens", Perm: auth.PermAuthenticated, Resp: []auth.Token{},
			Handle: func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Accounts.ListTokens(r.Context(), p.UserID))
			}},
		{Method: "POST", Path: "/me/tokens", Tag: "me", Summary: "Create an API token (the secret is shown once)", Perm: auth.PermAuthenticated,
			Body: NewTokenRequest{}, Resp: NewTokenResponse{}, Status: http.StatusCreated, Handle: a.createToken},
		{Method: "DELETE", Path: "/me/tokens/{id}", Tag: "me", Summary: "Revoke one of my API tokens", Perm: auth.PermAuthenticated,
			Status: http.StatusNoContent, Handle: a.revokeOwnToken},
		{Method: "GET", Path: "/users", Tag: "users", Summary: "List users", Perm: auth.PermUserAdmin, Resp: []auth.User{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Accounts.ListUsers(r.Context()))
			}},
		{Method: "POST", Path: "/users", Tag: "users", Summary: "Create a user", Perm: auth.PermUserAdmin, Body: NewUserRequest{},
			Resp: auth.User{}, Status: http.StatusCreated, Handle: a.createUser},
		{Method: "GET", Path: "/users/{id}", Tag: "users", Summary: "Get a user", Perm: auth.PermUserAdmin, Resp: auth.User{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Accounts.GetUser(r.Context(), r.PathValue("id")))
			}},
		{Method: "PATCH", Path: "/users/{id}", Tag: "users", Summary: "Change a user's display name, role or disabled flag", Perm: auth.PermUserAdmin,
			Body: UserPatch{}, Resp: auth.User{}, Handle: a.patchUser},
		{Method: "GET", Path: "/users/{id}/policy-roles", Tag: "users", Summary: "The policy roles a user holds", Perm: auth.PermUserAdmin,
			Resp: PolicyRolesRequest{}, Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				u, err := a.Accounts.GetUser(r.Context(), r.PathValue("id"))
				return reply{w, http.StatusOK}.send(PolicyRolesRequest{PolicyRoles: u.PolicyRoles}, err)
			}},
		{Method: "PUT", Path: "/users/{id}/policy-roles", Tag: "users", Summary: "Set the policy roles a user holds (checked against the policy in force)",
			Perm: auth.PermUserAdmin, Body: PolicyRolesRequest{}, Resp: auth.User{}, Handle: a.setPolicyRoles},
		{Method: "PUT", Path: "/users/{id}/password", Tag: "users", Summary: "Reset a user's password (ends their sessions)", Perm: auth.PermUserAdmin,
			Body: PasswordReset{}, Status: http.StatusNoContent, Handle: a.resetPassword},
		{Method: "GET", Path: "/users/{id}/tokens", Tag: "users", Summary: "List a user's API tokens", Perm: auth.PermUserAdmin, Resp: []auth.Token{},
			Handle: func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				return reply{w, http.StatusOK}.send(a.Accounts.ListTokens(r.Context(), r.PathValue("id")))
			}},
		{Method: "DELETE", Path: "/users/{id}/tokens/{token}", Tag: "users", Summary: "Revoke a user's API token", Perm: auth.PermUserAdmin,
			Status: http.StatusNoContent, Handle: a.revokeUserToken},
	}
}

func (a *API) login(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in LoginRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	token, p, err := a.Accounts.Login(r.Context(), in.Username, in.Password, authn.ClientAddr(r))
	if err != nil {
		return err
	}
	authn.SetCookie(w, r, token)
	WriteJSON(w, http.StatusOK, p)
	return nil
}

func (a *API) logout(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	c, err := r.Cookie(authn.CookieName)
	if err != nil {
		return errs.E(errs.Invalid, "no session cookie; API tokens are revoked with DELETE /api/v1/me/tokens/{id}")
	}
	if err := a.Accounts.LogoutFrom(r.Context(), c.Value, authn.ClientAddr(r)); err != nil {
		return err
	}
	authn.ClearCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) changePassword(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in PasswordChange
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := a.Accounts.SetPassword(r.Context(), p.Actor(authn.ClientAddr(r)), p.UserID, in.CurrentPassword, in.NewPassword); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in NewTokenRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.ExpiresInDays < 0 || in.ExpiresInDays > maxTokenDays {
		return errs.E(errs.Invalid, "expires_in_days must be between 0 (never) and %d", maxTokenDays)
	}
	secret, tok, err := a.Accounts.CreateToken(r.Context(), p.Actor(authn.ClientAddr(r)), p.UserID, in.Name,
		time.Duration(in.ExpiresInDays)*24*time.Hour)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusCreated, NewTokenResponse{Token: secret, Detail: tok})
	return nil
}

func (a *API) revokeOwnToken(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tok, err := a.Accounts.GetToken(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if tok.UserID != p.UserID {
		// Same answer as a missing token: do not confirm other users' IDs.
		return errs.E(errs.NotFound, "token %q not found", r.PathValue("id"))
	}
	if err := a.Accounts.RevokeToken(r.Context(), p.Actor(authn.ClientAddr(r)), tok.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) revokeUserToken(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tok, err := a.Accounts.GetToken(r.Context(), r.PathValue("token"))
	if err != nil {
		return err
	}
	if tok.UserID != r.PathValue("id") {
		return errs.E(errs.NotFound, "token %q not found for that user", r.PathValue("token"))
	}
	if err := a.Accounts.RevokeToken(r.Context(), p.Actor(authn.ClientAddr(r)), tok.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in NewUserRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	u, err := a.Accounts.CreateUser(r.Context(), p.Actor(authn.ClientAddr(r)), auth.NewUser{
		Username: in.Username, DisplayName: in.DisplayName, Role: in.Role, Password: in.Password, PolicyRoles: in.PolicyRoles})
	if err != nil {
		return err
	}
	w.Header().Set("Location", Prefix+"/users/"+u.ID)
	WriteJSON(w, http.StatusCreated, u)
	return nil
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in UserPatch
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Accounts.UpdateUser(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"),
		auth.UserUpdate{DisplayName: in.DisplayName, Role: in.Role, Disabled: in.Disabled}))
}

func (a *API) setPolicyRoles(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in PolicyRolesRequest
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	return reply{w, http.StatusOK}.send(a.Accounts.SetPolicyRoles(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), in.PolicyRoles))
}

func (a *API) resetPassword(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in PasswordReset
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := a.Accounts.SetPassword(r.Context(), p.Actor(authn.ClientAddr(r)), r.PathValue("id"), "", in.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
