// Package testsuite runs rdslocal in-process for Go tests: Start serves the
// whole AWS API on a random loopback port and returns an aws.Config whose
// clients talk to it, so a test needs no Docker and no running emulator.
//
//	emu := testsuite.Start(t)
//	client := rds.NewFromConfig(emu.AWSConfig)
package testsuite
