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

// specFor is the engine spec of an instance record. Cluster members other
// than the first become replicas of the writer.
func (r *RDS) specFor(st *regionState, in *instance) engine.Spec {
	s := engine.Spec{
		ID: engineID(st, in.ID), Engine: in.Engine, EngineVersion: in.EngineVersion, InstanceClass: in.Class,
		MasterUsername: in.MasterUsername, MasterPassword: in.MasterPassword, DBName: in.DBName,
		Port: in.Port, External: in.ExternalEndpoint,
	}
	if in.ReplicaOf != "" {
		s.ReplicaOf = engineID(st, in.ReplicaOf)
	}
	return s
}

// transition runs an engine operation for one instance in the background
// and records its outcome: status ok on success, failed with the reason on
// error. The record may have been deleted meanwhile; then nothing changes.
func (r *RDS) transition(st *regionState, in *instance, ok string, op func(ctx context.Context) (*engine.Instance, error)) {
	go func() {
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
			}
		}
		r.mu.Unlock()
		r.changed()
	}()
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
func (r *RDS) startCreate(st *regionState, in *instance) {
	if r.opts.Engines == nil {
		in.Status = "available"
		return
	}
	spec := r.specFor(st, in)
	multiAZ := in.MultiAZ && in.Cluster == "" && in.ExternalEndpoint == ""
	r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		got, err := r.opts.Engines.Create(ctx, spec)
		if err == nil && multiAZ {
			err = r.createStandby(ctx, spec)
		}
		return &got, err
	})
}

// standbyID names the hidden standby replica of a Multi-AZ instance.
func standbyID(engineID string) string { return engineID + ".standby" }

// createStandby gives a Multi-AZ instance its hidden standby: a real
// replica of the primary, not visible in the API, ready for a failover.
func (r *RDS) createStandby(ctx context.Context, primary engine.Spec) error {
	_, err := r.opts.Engines.Create(ctx, engine.Spec{
		ID: standbyID(primary.ID), Engine: primary.Engine, EngineVersion: primary.EngineVersion,
		InstanceClass: primary.InstanceClass, ReplicaOf: primary.ID,
	})
	if err != nil {
		return fmt.Errorf("creating the Multi-AZ standby: %w", err)
	}
	return nil
}

// deleteStandby removes a Multi-AZ standby, if there is one.
func (r *RDS) deleteStandby(ctx context.Context, engineID string) {
	if err := r.opts.Engines.Delete(ctx, standbyID(engineID)); err != nil && !errors.Is(err, engine.ErrNotFound) {
		r.log.Warn("deleting the Multi-AZ standby", "instance", engineID, "err", err)
	}
}

// startDelete stops and removes the server, then the record.
func (r *RDS) startDelete(st *regionState, in *instance) {
	if r.opts.Engines == nil {
		delete(st.Instances, in.ID)
		r.addrs.releasePort(in.Port)
		return
	}
	in.Status = "deleting"
	id := engineID(st, in.ID)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		r.deleteStandby(ctx, id)
		err := r.opts.Engines.Delete(ctx, id)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			r.log.Warn("deleting DB instance server", "instance", in.ID, "err", err)
		}
		r.mu.Lock()
		if st.Instances[in.ID] == in {
			delete(st.Instances, in.ID)
			r.addrs.releasePort(in.Port)
		}
		r.mu.Unlock()
		r.changed()
	}()
}

// startReboot restarts the server.
func (r *RDS) startReboot(st *regionState, in *instance) {
	if r.opts.Engines == nil {
		return
	}
	in.Status = "rebooting"
	id := engineID(st, in.ID)
	r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		return nil, r.opts.Engines.Reboot(ctx, id)
	})
}

// startMultiAZ adds or removes the hidden standby when ModifyDBInstance
// changes MultiAZ.
func (r *RDS) startMultiAZ(st *regionState, in *instance, on bool) {
	if r.opts.Engines == nil || in.Cluster != "" || in.ExternalEndpoint != "" {
		return
	}
	spec := r.specFor(st, in)
	in.Status = "modifying"
	r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		if on {
			return nil, r.createStandby(ctx, spec)
		}
		r.deleteStandby(ctx, spec.ID)
		return nil, nil
	})
}

// startSetPassword changes the master password on the real server.
func (r *RDS) startSetPassword(st *regionState, in *instance, password string) {
	if r.opts.Engines == nil || in.ReplicaOf != "" {
		return
	}
	in.Status = "resetting-master-credentials"
	id := engineID(st, in.ID)
	r.transition(st, in, "available", func(ctx context.Context) (*engine.Instance, error) {
		return nil, r.opts.Engines.SetPassword(ctx, id, password)
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
				specs = append(specs, engine.Spec{ID: standbyID(spec.ID), Engine: spec.Engine, EngineVersion: spec.EngineVersion,
					InstanceClass: spec.InstanceClass, ReplicaOf: spec.ID})
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
	for _, rc := range recs {
		got, gerr := r.opts.Engines.Get(engineID(rc.st, rc.in.ID))
		switch {
		case gerr != nil:
			rc.in.Status, rc.in.StatusMessage = "failed", gerr.Error()
		case got.Status == engine.StatusAvailable:
			rc.in.Status, rc.in.StatusMessage = "available", ""
			rc.in.Address, rc.in.Port, rc.in.EngineVersion = got.Host, got.Port, got.EngineVersion
		default:
			rc.in.Status, rc.in.StatusMessage = "failed", fmt.Sprintf("server did not come back: %v", err)
		}
	}
	r.mu.Unlock()
	r.changed()
}

// startFailover makes target the writer of its cluster for real: the
// replica is promoted and the other readers follow it. The former writer
// keeps running but no longer takes part in replication (a later issue
// rebuilds it as a reader).
func (r *RDS) startFailover(st *regionState, cl *cluster, oldWriter, target string) {
	if r.opts.Engines == nil || oldWriter == target {
		return
	}
	cl.Status = "failing-over"
	var readers []*instance
	for _, m := range clusterMembers(st, cl.ID) {
		if m.ID != target && m.ID != oldWriter && m.ReplicaOf != "" {
			readers = append(readers, m)
		}
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		err := r.opts.Engines.Promote(ctx, engineID(st, target))
		var repointed []*instance
		if err == nil {
			for _, m := range readers {
				if rerr := r.opts.Engines.Repoint(ctx, engineID(st, m.ID), engineID(st, target)); rerr != nil {
					r.log.Warn("reader did not follow the new writer", "instance", m.ID, "err", rerr)
					continue
				}
				repointed = append(repointed, m)
			}
		}
		r.mu.Lock()
		cl.Status = "available"
		if err != nil {
			r.log.Warn("cluster failover failed", "cluster", cl.ID, "target", target, "err", err)
			cl.Writer = oldWriter
		} else if t := st.Instances[target]; t != nil {
			t.ReplicaOf = ""
			for _, m := range repointed {
				m.ReplicaOf = target
			}
			if old := st.Instances[oldWriter]; old != nil {
				old.ReplicaOf = ""
			}
		}
		r.mu.Unlock()
		r.changed()
	}()
}
