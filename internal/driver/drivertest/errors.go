package drivertest

import (
	"errors"
	"testing"

	"github.com/esctl/esctl/estype"
)

// ErrorCase is one row of an engine's error-mapping table: an error its
// database driver really produced (the engine's test provokes it) and what
// the engine's interpretError must make of it.
type ErrorCase struct {
	Name string
	Err  error // nil only for the case named "Nil"
	// Is is the error the result must match (errors.Is); As, when set,
	// checks its type and fields.
	Is error
	As func(error) bool
	// Passes: the error comes back unchanged (not the store's to map).
	Passes bool
}

// CheckErrorMapping runs an engine's table through its interpretError. A
// mapped error keeps the driver's error in its chain.
func CheckErrorMapping(t *testing.T, interpret func(error) error, cases []ErrorCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			if tt.Name != "Nil" && tt.Err == nil {
				t.Fatal("the database did not produce the error this case needs")
			}
			got := interpret(tt.Err)
			if tt.Passes {
				if got != tt.Err { //nolint:errorlint // identity: the error must come back unchanged, not wrapped
					t.Fatalf("interpretError(%v) = %v, want it unchanged", tt.Err, got)
				}
				return
			}
			if !errors.Is(got, tt.Is) {
				t.Fatalf("interpretError(%v) = %v, want errors.Is %v", tt.Err, got, tt.Is)
			}
			if tt.As != nil && !tt.As(got) {
				t.Fatalf("interpretError(%v) = %v: wrong type or fields", tt.Err, got)
			}
			if !errors.Is(got, tt.Err) {
				t.Fatalf("interpretError dropped the driver error from the chain: %v", got)
			}
		})
	}
}

// IsConflict matches a *ConflictError.
func IsConflict(err error) bool {
	var ce *estype.ConflictError
	return errors.As(err, &ce)
}

// IsSecretExists matches a *SecretExistsError.
func IsSecretExists(err error) bool {
	var se *estype.SecretExistsError
	return errors.As(err, &se)
}

// IsInvariant matches an *InvariantError naming invariant.
func IsInvariant(invariant string) func(error) bool {
	return func(err error) bool {
		var ie *estype.InvariantError
		return errors.As(err, &ie) && ie.Invariant == invariant
	}
}

// IsResource matches a *ResourceError of resource r (ErrResources).
func IsResource(r estype.Resource) func(error) bool {
	return func(err error) bool {
		var re *estype.ResourceError
		return errors.As(err, &re) && re.Resource == r && errors.Is(err, estype.ErrResources)
	}
}
