package policy

import (
	"context"

	"github.com/patchward/patchward/internal/auth"
)

// Grants returns the policy's roles and the Patchward role each grants:
// what the account service checks the policy roles given to a user
// against.
func (c *Compiled) Grants() auth.PolicyGrants {
	g := auth.PolicyGrants{}
	for _, r := range c.Policy().Roles {
		g[r.Name] = auth.Role(r.Grants)
	}
	return g
}

// Grants returns the policy in force's Grants; it fits
// auth.Options.PolicyGrants.
func (s *Service) Grants(ctx context.Context) (auth.PolicyGrants, error) {
	c, _, err := s.Current(ctx)
	if err != nil {
		return nil, err
	}
	return c.Grants(), nil
}
