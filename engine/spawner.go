package engine

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
)

// spawner starts every child process from one goroutine locked to its OS
// thread, for the life of the Manager.
//
// Children get Pdeathsig=SIGKILL so that they die with rdslocal even when
// rdslocal is SIGKILLed and cannot run Close. Linux delivers that signal
// when the *thread* that forked the child exits, not the process; Go may
// retire threads, so a child forked from an arbitrary goroutine could be
// killed at a random moment. Forking from a thread we pin and never
// release makes the signal mean "rdslocal is gone". When the Manager
// closes, the goroutine returns while still locked, which makes the Go
// runtime end that thread: any child still alive then is killed too.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{}
	done chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

var errSpawnerClosed = errors.New("process spawner stopped")

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	runtime.LockOSThread() // never unlocked: see the type's comment
	defer close(s.done)
	for {
		select {
		case r := <-s.reqs:
			r.err <- r.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

// start starts cmd on the spawner's thread with Pdeathsig and its own
// process group (so signals from the terminal do not reach it and the
// whole group can be killed), keeping any Credential already set.
func (s *spawner) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setDeathSignal(cmd.SysProcAttr)
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	select {
	case s.reqs <- r:
		return <-r.err
	case <-s.done:
		return errSpawnerClosed
	}
}

// stop ends the spawner goroutine and its thread.
func (s *spawner) stop() {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}
