package web

import "golang.org/x/crypto/bcrypt"

// The tests of this package sign in hundreds of times; under the race detector a cost-11
// bcrypt takes seconds. They hash at the minimum cost; TestBcryptCost checks the real one.
func init() { bcryptCost = bcrypt.MinCost }
