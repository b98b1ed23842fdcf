package rds

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rdslocal/rdslocal/engine"
)

// Engines is what the RDS front-end needs from the engine layer that runs
// the real database behind each DB instance (package engine's Manager).
// Without one (Options.Engines nil, --db-backend none) instances are
// records only.
type Engines interface {
	Supports(engine, version string) error
	Create(ctx context.Context, s engine.Spec) (engine.Instance, error)
	Delete(ctx context.Context, id string) error
	Reboot(ctx context.Context, id string) error
	SetPassword(ctx context.Context, id, password string) error
	Promote(ctx context.Context, id string) error
	Repoint(ctx context.Context, id, primaryID string) error
	Switchover(ctx context.Context, oldID, newID string) error
	Demote(ctx context.Context, id, primaryID string) error
	Position(ctx context.Context, id string) (uint64, error)
	// Watch delivers what the engine layer sees happen to the servers on
	// their own: a server died, a replica stopped or resumed replicating.
	Watch(fn func(engine.Event))
	Restore(ctx context.Context, specs []engine.Spec) error
	Get(id string) (engine.Instance, error)
}

// engineTimeout bounds one engine operation (server start, stop, promote).
const engineTimeout = 2 * time.Minute

// engineID names an instance in the engine layer, which is shared by every
// account and region of the process.
func engineID(st *regionState, id string) string {
	return st.Account + "." + st.Region + "." + id
}

// baseEngineID is the engine ID an instance record was created with.
func baseEngineID(st *regionState, in *instance) string {
	if in.EngineID != "" {
		return in.EngineID
	}
	return engineID(st, in.ID)
}

// primaryEID is the engine ID of the server that serves an instance: its
// own, or after a Multi-AZ failover its former standby's.
func primaryEID(st *regionState, in *instance) string {
	if in.StandbyActive {
		return standbyID(baseEngineID(st, in))
	}
	return baseEngineID(st, in)
}

// standbyEID is the engine ID of a Multi-AZ instance's hidden standby.
func standbyEID(st *regionState, in *instance) string {
	if in.StandbyActive {
		return baseEngineID(st, in)
	}
	return standbyID(baseEngineID(st, in))
}

// specFor is the engine spec of an instance record. Cluster members other
// than the first become replicas of the writer.
func (r *RDS) specFor(st *regionState, in *instance) engine.Spec {
	s := engine.Spec{
		ID: primaryEID(st, in), Engine: in.Engine, EngineVersion: in.EngineVersion, InstanceClass: in.Class,
		MasterUsername: in.MasterUsername, MasterPassword: in.MasterPassword, DBName: in.DBName,
		Port: in.Port, External: in.ExternalEndpoint,
		// Aurora's readers share the writer's storage: a commit the writer
		// acknowledged is on every reader. Synchronous replication to the
		// readers stands in for it (see failover.go).
		Synchronous: in.Cluster != "",
	}
	if w := st.Instances[in.ReplicaOf]; w != nil {
		s.ReplicaOf = primaryEID(st, w)
	} else if in.ReplicaOf != "" {
		s.ReplicaOf = engineID(st, in.ReplicaOf)
	}
	return s
}

// transition runs an engine operation for one instance in the background
// and records its outcome: status ok on success, failed with the reason on
// error. The record may have been deleted meanwhile; then nothing changes.
// After a success done, if not nil, runs under r.mu. The channel closes
// once the outcome is recorded.
func (r *RDS) transition(st *regionState, in *instance, ok string, op func(ctx context.Context) (*engine.Instance, error), done func()) <-chan struct{} {
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		got, err := op(ctx)
		r.mu.Lock()
		if st.Instances[in.ID] == in {
			if err != nil {
				in.Status, in.StatusMessage = "failed", err.Error()
				r.log.Warn("DB instance failed", "instance", in.ID, "account", st.Account, "region", st.Region, "err", err)
			} else {
				in.Status, in.StatusMessage = ok, ""
				if got != nil {
					in.EngineVersion, in.Address, in.Port = got.EngineVersion, got.Host, got.Port
				}
				if done != nil {
					done()
				}
			}
		}
		r.mu.Unlock()
		r.changed()
	}()
	return finished
}

// settleWait bounds how long CreateDBInstance, RebootDBInstance and
// DeleteDBInstance wait for the engine operation they start before they
// answer. The answer still shows the status at the call (creating,
// rebooting, deleting), as AWS's does; but the next Describe then shows
// the outcome, so `aws rds wait …` (which polls every 30 s) and SDK
// waiters return at once instead of sleeping through an operation that
// takes a second.
const settleWait = 20 * time.Second

// awaitSettled waits for done (nil: nothing to wait for) up to settleWait.
func awaitSettled(ctx context.Context, done <-chan struct{}) {
	if done == nil {
		return
	}
	t := time.NewTimer(settleWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// changed tells the server that state changed outside a request, so it is
// saved.
func (r *RDS) changed() {
	if r.opts.OnChange != nil {
		r.opts.OnChange()
	}
	r.applyDataPlane()
}

// startCreate provisions the server of a new instance record.
func (r *RDS) startCreate(st *regionState, in *instance) <-chan struct{} {
	if r.opts.Engines == nil {
		in.Status = "available"
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0005", "creation", "DB instance created.")
		return nil
	}
	spec, sbID := r.specFor(st, in), standbyEID(st, in)
	multiAZ := in.MultiAZ && in.Cluster == "" && in.ExternalEndpoint == ""
	return r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		got, err := r.opts.Engines.Create(ctx, spec)
		if errors.Is(err, engine.ErrNoFreePort) && spec.Port != 0 && in.ExternalEndpoint == "" {
			// Another program took the port we chose before the server
			// bound it: let the engine layer pick one.
			r.log.Warn("DB instance port taken; the server takes another", "instance", in.ID, "port", spec.Port, "err", err)
			spec.Port = 0
			if got, err = r.opts.Engines.Create(ctx, spec); err == nil {
				r.mu.Lock()
				r.addrs.releasePort(in.Port)
				r.addrs.claimPort(got.Port)
				r.mu.Unlock()
			}
		}
		if err == nil && multiAZ {
			err = r.createStandby(ctx, spec, sbID)
		}
		return &got, err
	}, func() {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0005", "creation", "DB instance created.")
		if in.Cluster != "" {
			r.proxyTargetAdded(st, in)
		}
	})
}

// standbyID names the hidden standby replica of a Multi-AZ instance.
func standbyID(engineID string) string { return engineID + ".standby" }

// createStandby gives a Multi-AZ instance its hidden standby: a real
// replica of the primary, not visible in the API, ready for a failover.
// It is synchronous, as RDS's standby is: while it is healthy the primary
// acknowledges a commit only once the standby has it.
func (r *RDS) createStandby(ctx context.Context, primary engine.Spec, id string) error {
	_, err := r.opts.Engines.Create(ctx, engine.Spec{
		ID: id, Engine: primary.Engine, EngineVersion: primary.EngineVersion,
		InstanceClass: primary.InstanceClass, ReplicaOf: primary.ID, Synchronous: true,
	})
	if err != nil {
		return fmt.Errorf("creating the Multi-AZ standby: %w", err)
	}
	return nil
}

// deleteStandby removes a Multi-AZ standby, if there is one.
func (r *RDS) deleteStandby(ctx context.Context, id string) {
	if err := r.opts.Engines.Delete(ctx, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
		r.log.Warn("deleting the Multi-AZ standby", "instance", id, "err", err)
	}
}

// startDelete stops and removes the server, then the record; the
// channel closes once the record is gone.
func (r *RDS) startDelete(st *regionState, in *instance) <-chan struct{} {
	if r.opts.Engines == nil {
		r.forgetInstance(st, in)
		return nil
	}
	in.Status = "deleting"
	id, sb := primaryEID(st, in), standbyEID(st, in)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		r.deleteStandby(ctx, sb)
		err := r.opts.Engines.Delete(ctx, id)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			r.log.Warn("deleting DB instance server", "instance", in.ID, "err", err)
		}
		r.mu.Lock()
		if st.Instances[in.ID] == in {
			r.forgetInstance(st, in)
		}
		r.mu.Unlock()
		r.changed()
	}()
	return finished
}

// forgetInstance removes a deleted instance's record, and the instance
// from the target group of any proxy that had it registered, as RDS does.
// The caller holds r.mu.
func (r *RDS) forgetInstance(st *regionState, in *instance) {
	delete(st.Instances, in.ID)
	r.addrs.releasePort(in.Port)
	r.event(st, srcInstance, in.ID, "RDS-EVENT-0003", "deletion", "DB instance deleted.")
	for _, p := range st.Proxies {
		if contains(p.TargetGroup.Instances, []string{in.ID}) {
			p.TargetGroup.Instances = without(p.TargetGroup.Instances, []string{in.ID})
			r.event(st, srcProxy, p.Name, "RDS-EVENT-0214", "configuration change",
				fmt.Sprintf("RDS detected deletion of DB instance %s and automatically removed it from target group %s of DB proxy %s.", in.ID, defaultTargetGroup, p.Name))
		}
	}
}

// startReboot restarts the server; then, if not nil, runs under r.mu.
func (r *RDS) startReboot(st *regionState, in *instance, then func()) <-chan struct{} {
	if r.opts.Engines == nil {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
		if then != nil {
			then()
		}
		return nil
	}
	in.Status = "rebooting"
	id := primaryEID(st, in)
	return r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		return nil, r.opts.Engines.Reboot(ctx, id)
	}, func() {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
		if then != nil {
			then()
		}
	})
}

// startMultiAZ adds or removes the hidden standby when ModifyDBInstance
// changes MultiAZ.
func (r *RDS) startMultiAZ(st *regionState, in *instance, on bool) {
	if r.opts.Engines == nil || in.Cluster != "" || in.ExternalEndpoint != "" {
		return
	}
	spec, sb := r.specFor(st, in), standbyEID(st, in)
	in.Status = "modifying"
	if on {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0024", "configuration change", "Applying modification to convert to a Multi-AZ DB instance.")
	} else {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0030", "configuration change", "Applying modification to convert to a standard (Single-AZ) DB instance.")
	}
	r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		if on {
			return nil, r.createStandby(ctx, spec, sb)
		}
		r.deleteStandby(ctx, sb)
		return nil, nil
	}, func() {
		if on {
			r.event(st, srcInstance, in.ID, "RDS-EVENT-0025", "configuration change", "Finished applying modification to convert to a Multi-AZ DB instance.")
		} else {
			r.event(st, srcInstance, in.ID, "RDS-EVENT-0029", "configuration change", "Finished applying modification to convert to a standard (Single-AZ) DB instance.")
		}
	})
}

// startSetPassword changes the master password on the real server.
func (r *RDS) startSetPassword(st *regionState, in *instance, password string) {
	if r.opts.Engines == nil || in.ReplicaOf != "" {
		return
	}
	in.Status = "resetting-master-credentials"
	id := primaryEID(st, in)
	r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		return nil, r.opts.Engines.SetPassword(ctx, id, password)
	}, func() {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0016", "configuration change", "Reset master credentials.")
	})
}

// checkEngine refuses an engine or version nothing installed can serve, so
// CreateDBInstance fails at once rather than leaving a failed record.
func (r *RDS) checkEngine(name, version string) error {
	if r.opts.Engines == nil {
		return nil
	}
	return r.opts.Engines.Supports(name, version)
}

// StartEngines brings back the servers of every restored instance (after
// Restore, with a data directory). Instances whose server cannot start end
// in status failed with the reason.
func (r *RDS) StartEngines(ctx context.Context) {
	if r.opts.Engines == nil {
		return
	}
	r.mu.Lock()
	var specs []engine.Spec
	type rec struct {
		st *regionState
		in *instance
	}
	var recs []rec
	for _, st := range r.states {
		for _, in := range st.Instances {
			if in.Status == "deleting" {
				r.startDelete(st, in)
				continue
			}
			spec := r.specFor(st, in)
			specs = append(specs, spec)
			if in.MultiAZ && in.Cluster == "" && in.ExternalEndpoint == "" {
				specs = append(specs, engine.Spec{ID: standbyEID(st, in), Engine: spec.Engine, EngineVersion: spec.EngineVersion,
					InstanceClass: spec.InstanceClass, ReplicaOf: spec.ID, Synchronous: true})
			}
			recs = append(recs, rec{st, in})
		}
	}
	r.mu.Unlock()
	if len(specs) == 0 {
		return
	}
	err := r.opts.Engines.Restore(ctx, specs)
	r.mu.Lock()
	r.followEngineRoles()
	for _, rc := range recs {
		got, gerr := r.opts.Engines.Get(primaryEID(rc.st, rc.in))
		switch {
		case gerr != nil:
			rc.in.Status, rc.in.StatusMessage = "failed", gerr.Error()
		case got.Status == engine.StatusAvailable:
			rc.in.Status, rc.in.StatusMessage = "available", ""
			rc.in.Address, rc.in.Port, rc.in.EngineVersion = got.Host, got.Port, got.EngineVersion
			r.addrs.claimPort(got.Port) // another server's after a Multi-AZ failover
		default:
			rc.in.Status, rc.in.StatusMessage = "failed", fmt.Sprintf("server did not come back: %v", err)
		}
	}
	r.mu.Unlock()
	r.changed()
}

// followEngineRoles makes the records say what the engine layer saved
// about each server's role, after a restart. The engine layer saves a
// failover's steps (a switchover, a promotion) before the records follow
// them, so rdslocal stopped in between would otherwise report a replica
// as the writer and send the proxies' writes to it. Where the engine
// layer shows no single primary (it is itself between two steps), the
// records stay as they are. The caller holds r.mu.
func (r *RDS) followEngineRoles() {
	get := func(eid string) (engine.Instance, bool) {
		g, err := r.opts.Engines.Get(eid)
		return g, err == nil
	}
	for _, st := range r.states {
		for _, in := range st.Instances {
			if !in.MultiAZ || in.Cluster != "" || in.ExternalEndpoint != "" || in.Status == "deleting" {
				continue
			}
			p, okP := get(primaryEID(st, in))
			s, okS := get(standbyEID(st, in))
			if okP && okS && p.Role == engine.RoleReplica && s.Role == engine.RolePrimary {
				r.log.Warn("the Multi-AZ standby had taken over before rdslocal stopped; the records follow", "instance", in.ID)
				in.StandbyActive = !in.StandbyActive
			}
		}
		byEID := map[string]*instance{}
		for _, in := range st.Instances {
			byEID[primaryEID(st, in)] = in
		}
		for _, cl := range st.Clusters {
			members := clusterMembers(st, cl.ID)
			var primaries []*instance
			for _, m := range members {
				if g, ok := get(primaryEID(st, m)); ok && g.Role == engine.RolePrimary {
					primaries = append(primaries, m)
				}
			}
			if len(primaries) != 1 {
				continue
			}
			w := primaries[0]
			if w.ID != r.clusterWriter(st, cl) {
				r.log.Warn("a failover had promoted another writer before rdslocal stopped; the records follow", "cluster", cl.ID, "writer", w.ID)
				cl.Writer = w.ID
			}
			for _, m := range members {
				g, ok := get(primaryEID(st, m))
				switch {
				case m == w:
					m.ReplicaOf = ""
				case ok && g.Role == engine.RoleReplica && byEID[g.ReplicaOf] != nil:
					m.ReplicaOf = byEID[g.ReplicaOf].ID
				}
			}
		}
	}
}
