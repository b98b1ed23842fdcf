// Package testsuite runs rdslocal in-process for Go tests: Start serves the
// whole AWS API on a random loopback port and returns an aws.Config whose
// clients talk to it, so a test needs no Docker and no running emulator.
//
//	emu := testsuite.Start(t)
//	client := rds.NewFromConfig(emu.AWSConfig)
//
// With WithInitFile and WithInitDir the emulator applies a fixture file and
// runs init hooks at start; WaitReady waits for them. The end-to-end tests
// of this package run real database servers, the AWS CLI, psql and the
// rdslocal binary (the README's CI recipe, `rdslocal wait`). Subpackage
// rdslocalcontainer is the testcontainers-go module for the container
// image.
package testsuite
