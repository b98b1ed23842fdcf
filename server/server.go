package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/engine"
	"github.com/rdslocal/rdslocal/fixture"
	"github.com/rdslocal/rdslocal/iamauth"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/rds"
	"github.com/rdslocal/rdslocal/secrets"
)

// Version is the rdslocal version reported by the health endpoint.
const Version = "0.1.0"

// Server is one rdslocal process: the services, their state and the HTTP
// gateway in front of them.
type Server struct {
	cfg       Config
	log       *slog.Logger
	services  map[string]*api.Service // by signing name
	byTarget  map[string]*api.Service // JSON 1.1 target prefix
	byVersion map[string]*api.Service // query protocol API version
	state     *stateDir               // nil without a data directory
	saveMu    map[string]*sync.Mutex
	router    *mux.Router
	ca        *acmcert.CA
	iam       *iamauth.Directory
	rds       *rds.RDS
	acm       *acmcert.ACM
	proxies   *proxy.Manager
	engines   *engine.Manager // nil with --db-backend none
	init      initState
	initWG    sync.WaitGroup
}

// engineAdapter gives the RDS front-end the engine layer's operations.
type engineAdapter struct{ *engine.Manager }

// Supports checks that an installed server can run engine/version (and
// warms its template data directory).
func (a engineAdapter) Supports(name, version string) error {
	return a.Prepare(context.Background(), name, version)
}

// New builds a server from cfg and loads saved state from its data
// directory.
func New(cfg Config) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		services:  map[string]*api.Service{},
		byTarget:  map[string]*api.Service{},
		byVersion: map[string]*api.Service{},
		saveMu:    map[string]*sync.Mutex{},
	}
	s.init.phase = PhaseReady
	if cfg.InitFile != "" || cfg.InitDir != "" {
		s.init.phase = PhaseFixtures
	}
	if cfg.InitFile != "" {
		// A file that cannot be right stops the start here, before
		// anything runs.
		f, err := fixture.ReadFile(cfg.InitFile)
		if err != nil {
			return nil, err
		}
		s.init.file, s.init.progress = f, fixture.NewProgress(f)
	}
	caDir := ""
	if cfg.DataDir != "" {
		caDir = filepath.Join(cfg.DataDir, "ca")
	}
	ca, err := acmcert.LoadOrCreateCA(caDir)
	if err != nil {
		return nil, err
	}
	s.ca = ca
	s.iam = iamauth.NewDirectory()
	s.iam.Strict = cfg.EnforceIAM
	sec := secrets.New()
	rdsOpts := rds.Options{
		ProxyAddressing: cfg.ProxyAddressing,
		ProxyListenHost: listenHost(cfg.Listen),
		AdvertiseHost:   cfg.AdvertiseHost,
		PortMin:         cfg.PortMin,
		PortMax:         cfg.PortMax,
		Logger:          cfg.Logger,
	}
	if cfg.EnforceIAM {
		rdsOpts.Roles = s.iam
	}
	if cfg.DBBackend != "none" {
		engDir := ""
		if cfg.DataDir != "" {
			engDir = filepath.Join(cfg.DataDir, "engine")
			if err := openForServiceUsers(cfg.DataDir, cfg.Logger); err != nil {
				return nil, err
			}
		}
		mgr, err := engine.NewManager(context.Background(), engine.Config{
			DataDir: engDir, PortMin: cfg.PortMin, PortMax: cfg.PortMax, Backend: cfg.DBBackend, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("starting the engine layer: %w", err)
		}
		s.engines = mgr
		rdsOpts.Engines = engineAdapter{mgr}
	}
	certs, err := acmcert.NewEndpointCerts(ca, acmcert.EndpointCertsConfig{})
	if err != nil {
		s.Close()
		return nil, err
	}
	tokens := &iamauth.TokenValidator{Creds: s.iam}
	if cfg.EnforceIAM {
		tokens.Authorize = s.iam.Authorize
	}
	s.proxies = newDataPlane(sec, tokens, certs, cfg.Logger)
	rdsOpts.DataPlane = s.proxies
	s.rds = rds.New(rdsOpts)
	rdsSvc := s.rds.Service()
	s.rds.SetOnChange(func() { _ = s.save(rdsSvc) })
	s.acm = acmcert.NewACM(ca)
	for _, svc := range []*api.Service{sec.Service(), rdsSvc, s.iam.IAMService(), s.iam.STSService(), s.acm.Service()} {
		s.register(svc)
	}
	if cfg.DataDir != "" {
		st, err := newStateDir(cfg.DataDir)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.state = st
		if err := s.load(); err != nil {
			s.Close()
			return nil, err
		}
	}
	// Restored proxies listen again; servers of restored instances come
	// back in the background (a record says "failed" and why if one cannot
	// start), then the proxies learn their addresses.
	s.rds.ApplyDataPlane()
	go s.rds.StartEngines(context.Background())
	s.router = s.routes()
	return s, nil
}

func (s *Server) register(svc *api.Service) {
	name := svc.Name()
	s.services[name] = svc
	if s.saveMu[svc.Key()] == nil {
		s.saveMu[svc.Key()] = new(sync.Mutex)
	}
	if p := svc.Model.Metadata.TargetPrefix; p != "" {
		s.byTarget[p] = svc
	}
	if svc.Model.Metadata.Protocol == "query" {
		s.byVersion[svc.Model.Metadata.APIVersion] = svc
	}
}

func (s *Server) load() error {
	loaded := map[string]bool{}
	for _, svc := range s.services {
		key := svc.Key()
		if svc.State == nil || loaded[key] {
			continue
		}
		loaded[key] = true
		data, err := s.state.load(key)
		if err != nil {
			return fmt.Errorf("loading %s state: %w", key, err)
		}
		if data == nil {
			continue
		}
		if err := svc.State.Restore(data); err != nil {
			return fmt.Errorf("loading %s state from %s: %w", key, s.state.path(key), err)
		}
	}
	return nil
}

// save writes the snapshot of svc; the snapshot is taken under the save lock
// so the file always ends with the newest state.
func (s *Server) save(svc *api.Service) error {
	if s.state == nil {
		return nil
	}
	mu := s.saveMu[svc.Key()]
	mu.Lock()
	defer mu.Unlock()
	data, err := svc.State.Snapshot()
	if err == nil {
		err = s.state.save(svc.Key(), data)
	}
	if err != nil {
		s.log.Error("saving state failed", "service", svc.Key(), "err", err)
		return api.InternalFailure("saving state: " + err.Error())
	}
	return nil
}

func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	r.HandleFunc("/_rdslocal/health", s.serveHealth).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/_localstack/health", s.serveHealth).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/_rdslocal/reset", s.serveReset).Methods(http.MethodPost)
	r.HandleFunc("/_rdslocal/ca.pem", s.serveCA).Methods(http.MethodGet, http.MethodHead)
	for _, p := range []string{"/_rdslocal/init", "/_localstack/init", "/_rdslocal/init/{stage}", "/_localstack/init/{stage}"} {
		r.HandleFunc(p, s.serveInit).Methods(http.MethodGet)
	}
	r.HandleFunc("/metrics", s.serveMetrics).Methods(http.MethodGet)
	r.HandleFunc("/", s.serveAPI).Methods(http.MethodPost, http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found: the AWS API is served at /"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	})
	return r
}

// Handler is the HTTP handler of the whole API, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.router }

// serveHealth answers LocalStack's health document (always 200, as
// LocalStack), with whether start-up is done: Ready, and Init with every
// fixture's and hook's progress.
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Health())
}

// Health returns the document the health endpoint answers.
func (s *Server) Health() Health {
	states := map[string]string{}
	for name := range s.services {
		states[name] = "running"
	}
	st := s.initStatus()
	return Health{Services: states, Edition: "rdslocal", Version: Version, Ready: st.State == PhaseReady, Init: st}
}

// serveCA returns the local CA certificate that signs every proxy endpoint
// and ACM certificate; clients trust it for sslmode=verify-full.
func (s *Server) serveCA(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.ca.CertPEM())
}

// Engines is the engine layer running the DB instances' servers (nil with
// --db-backend none).
func (s *Server) Engines() *engine.Manager { return s.engines }

// CA is the local certificate authority.
func (s *Server) CA() *acmcert.CA { return s.ca }

// serveReset clears the state of every service (and its saved snapshot).
func (s *Server) serveReset(w http.ResponseWriter, _ *http.Request) {
	for _, svc := range s.services {
		if svc.State == nil {
			continue
		}
		svc.State.Reset()
		if err := s.save(svc); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
	}
	s.log.Info("state reset")
	writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
}

// Run serves the API on cfg.Listen until ctx ends, then shuts down cleanly.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.router, ReadHeaderTimeout: 30 * time.Second}
	s.log.Info("rdslocal listening", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	initCtx, stopInit := context.WithCancel(ctx)
	defer stopInit()
	if s.init.phase != PhaseReady {
		s.initWG.Add(1)
		go func() {
			defer s.initWG.Done()
			s.initialize(initCtx, apiURLFor(ln.Addr()))
		}()
	}
	select {
	case err := <-errc:
		stopInit()
		s.initWG.Wait()
		return err
	case <-ctx.Done():
	}
	s.initWG.Wait()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(shutCtx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	s.Close()
	s.log.Info("rdslocal stopped")
	return err
}

// Close stops every database server rdslocal started. Without a data
// directory their data is removed.
func (s *Server) Close() {
	if s.proxies != nil {
		if err := s.proxies.Close(); err != nil {
			s.log.Warn("closing proxy listeners", "err", err)
		}
	}
	if s.engines != nil {
		if err := s.engines.Close(); err != nil {
			s.log.Warn("stopping database servers", "err", err)
		}
	}
}

// listenHost is the host of the API address; ports-mode proxy endpoints
// listen there too, so publishing a container's ports reaches both.
func listenHost(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return "127.0.0.1"
	}
	return host
}

// openForServiceUsers makes the data directory searchable (o+x, not
// readable) when rdslocal runs as root: the database servers run as their
// service users (postgres, mysql) and must reach their data below it.
// Everything secret below it is mode 0600 or 0700 on its own.
func openForServiceUsers(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if info.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(dir, info.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("making the data directory searchable for the database servers: %w", err)
		}
		log.Info("made the data directory searchable (o+x) for the database servers' users", "dir", dir)
	}
	return nil
}
