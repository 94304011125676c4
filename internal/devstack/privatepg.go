package devstack

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrPostgresNotInstalled is returned by Postgres when no server is running
// and none can be started because the server binaries are missing.
var ErrPostgresNotInstalled = errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: " +
	"install the Debian package postgresql (apt-get install postgresql), or set DATABASE_URL to an existing database")

// postgresLibRoot is where Debian installs each major version's server
// binaries; they are not on PATH there.
const postgresLibRoot = "/usr/lib/postgresql"

// postgresStopTimeout bounds a fast shutdown; it only waits for open
// sessions to be cut and a checkpoint to be written.
const postgresStopTimeout = 30 * time.Second

// privateConf is appended to postgresql.conf after initdb. The default
// socket directory (/var/run/postgresql) belongs to the system's PostgreSQL
// and is not writable by other users, so the private server uses loopback
// TCP only.
const privateConf = `
# Private development server started by loomipay dev: loopback TCP only.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
`

type pgBinaries struct {
	major    int
	initdb   string
	pgCtl    string
	postgres string
}

var postgresVersion = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findPostgresBinaries lists every complete set of server binaries: the one
// on PATH first, then each version directory under libRoot.
func findPostgresBinaries(ctx context.Context, libRoot string) ([]pgBinaries, error) {
	var found []pgBinaries
	if b, ok := postgresBinariesOnPath(ctx); ok {
		found = append(found, b)
	}
	dirs, err := filepath.Glob(filepath.Join(libRoot, "*", "bin"))
	if err != nil {
		return nil, fmt.Errorf("looking under %s: %w", libRoot, err)
	}
	for _, dir := range dirs {
		major, err := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		if err != nil {
			continue
		}
		b := pgBinaries{
			major:    major,
			initdb:   filepath.Join(dir, "initdb"),
			pgCtl:    filepath.Join(dir, "pg_ctl"),
			postgres: filepath.Join(dir, "postgres"),
		}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) && isExecutable(b.postgres) {
			found = append(found, b)
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w (looked on PATH and in %s/*/bin)", ErrPostgresNotInstalled, libRoot)
	}
	return found, nil
}

func postgresBinariesOnPath(ctx context.Context) (pgBinaries, bool) {
	var b pgBinaries
	for name, dst := range map[string]*string{"initdb": &b.initdb, "pg_ctl": &b.pgCtl, "postgres": &b.postgres} {
		path, err := exec.LookPath(name)
		if err != nil {
			return pgBinaries{}, false
		}
		*dst = path
	}
	out, err := exec.CommandContext(ctx, b.postgres, "--version").Output()
	if err != nil {
		return pgBinaries{}, false
	}
	m := postgresVersion.FindSubmatch(out)
	if m == nil {
		return pgBinaries{}, false
	}
	b.major, _ = strconv.Atoi(string(m[1]))
	return b, true
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// choosePostgresBinaries picks the newest version for a new data directory,
// and exactly the data directory's version for an existing one, because a
// server refuses data written by another major version.
func choosePostgresBinaries(found []pgBinaries, dataMajor int, dataDir string) (pgBinaries, error) {
	if dataMajor == 0 {
		return slices.MaxFunc(found, func(a, b pgBinaries) int { return cmp.Compare(a.major, b.major) }), nil
	}
	for _, b := range found {
		if b.major == dataMajor {
			return b, nil
		}
	}
	versions := make([]int, 0, len(found))
	for _, b := range found {
		versions = append(versions, b.major)
	}
	return pgBinaries{}, fmt.Errorf("private PostgreSQL data in %s was created by version %d, but only %v is installed: "+
		"install postgresql-%d (apt-get install postgresql-%d), or delete %s to start with an empty database",
		dataDir, dataMajor, versions, dataMajor, dataMajor, dataDir)
}

// privatePostgres is a PostgreSQL cluster owned by the project, kept under
// the state directory.
type privatePostgres struct {
	bin      pgBinaries
	stateDir string
	dataDir  string
	logPath  string
	// runAs is the account the server runs under when we are root, because
	// postgres refuses to run as root; nil otherwise.
	runAs *syscall.Credential
	log   *slog.Logger
}

// startPrivatePostgres starts (or adopts) the private server regardless of
// what else runs on the machine.
func startPrivatePostgres(ctx context.Context, o Options) (string, func(), error) {
	stateDir, err := o.stateDir()
	if err != nil {
		return "", noop, err
	}
	pg := &privatePostgres{
		stateDir: stateDir,
		dataDir:  filepath.Join(stateDir, "postgres"),
		logPath:  filepath.Join(stateDir, "postgres.log"),
		log:      o.logger(),
	}
	dataMajor := clusterVersion(pg.dataDir)
	found, err := findPostgresBinaries(ctx, postgresLibRoot)
	if err != nil {
		return "", noop, err
	}
	if pg.bin, err = choosePostgresBinaries(found, dataMajor, pg.dataDir); err != nil {
		return "", noop, err
	}
	if err := pg.prepareFiles(); err != nil {
		return "", noop, err
	}

	if dataMajor == 0 {
		if err := pg.initCluster(ctx); err != nil {
			return "", noop, err
		}
	} else {
		url, stop, adopted, err := pg.adoptRunning(ctx)
		if err != nil || adopted {
			return url, stop, err
		}
	}
	return pg.start(ctx)
}

// clusterVersion returns the major version recorded by initdb, or 0 when
// the directory holds no complete cluster.
func clusterVersion(dataDir string) int {
	data, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return 0
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	return major
}

// prepareFiles creates the data directory and log file and, when we are
// root, hands them to the account the server will run as.
func (pg *privatePostgres) prepareFiles() error {
	if err := os.MkdirAll(pg.dataDir, 0o700); err != nil {
		return fmt.Errorf("creating PostgreSQL data directory: %w", err)
	}
	logFile, err := os.OpenFile(pg.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("creating PostgreSQL log file: %w", err)
	}
	logFile.Close()
	if os.Geteuid() != 0 {
		return nil
	}

	cred, account, err := serverAccount()
	if err != nil {
		return err
	}
	pg.runAs = cred
	pg.log.Info("running as root, so the private PostgreSQL runs as the "+account+" user", "data", pg.dataDir)
	if err := pg.grantTraversal(); err != nil {
		return err
	}
	if err := chownTree(pg.dataDir, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("handing the data directory to the %s user: %w", account, err)
	}
	if err := os.Chown(pg.logPath, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("handing the log file to the %s user: %w", account, err)
	}
	return nil
}

// serverAccount finds an unprivileged account to run PostgreSQL as root.
func serverAccount() (*syscall.Credential, string, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			continue
		}
		gid, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, name, nil
	}
	return nil, "", errors.New("running as root, but PostgreSQL refuses to run as root and neither a postgres " +
		"nor a nobody user exists: create one (adduser --system postgres) or run as a normal user")
}

// grantTraversal lets the server account pass through every directory above
// the data directory. Root's own directories (/root, a 0700 temp dir) would
// otherwise stop it; search permission alone does not let it list them.
func (pg *privatePostgres) grantTraversal() error {
	for dir := filepath.Dir(pg.dataDir); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("checking %s: %w", dir, err)
		}
		owner, ok := st.Sys().(*syscall.Stat_t)
		if ok && !canSearch(st.Mode().Perm(), owner.Uid, owner.Gid, pg.runAs) {
			mode := st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			if err := os.Chmod(dir, mode|0o001); err != nil {
				return fmt.Errorf("letting the PostgreSQL user reach its data through %s: %w", dir, err)
			}
			pg.log.Info("allowed other users to pass through (chmod o+x) so PostgreSQL can reach its data", "dir", dir)
		}
		if filepath.Dir(dir) == dir {
			return nil
		}
	}
}

func canSearch(perm fs.FileMode, ownerUID, ownerGID uint32, cred *syscall.Credential) bool {
	switch {
	case ownerUID == cred.Uid:
		return perm&0o100 != 0
	case ownerGID == cred.Gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// chownTree gives root and everything below it to uid:gid, skipping the walk
// when root already belongs to them (the tree was created by that account).
func chownTree(root string, uid, gid int) error {
	st, err := os.Stat(root)
	if err != nil {
		return err
	}
	if owner, ok := st.Sys().(*syscall.Stat_t); ok && int(owner.Uid) == uid && int(owner.Gid) == gid {
		return nil
	}
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// initCluster runs initdb once. Local trust authentication is what makes the
// URL password-free; the server only listens on loopback.
func (pg *privatePostgres) initCluster(ctx context.Context) error {
	entries, err := os.ReadDir(pg.dataDir)
	if err != nil {
		return fmt.Errorf("reading PostgreSQL data directory: %w", err)
	}
	if len(entries) > 0 {
		// Without PG_VERSION this is what an interrupted initdb left behind,
		// never a usable cluster, and initdb refuses a non-empty directory.
		pg.log.Warn("clearing an incomplete PostgreSQL data directory", "dir", pg.dataDir)
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(pg.dataDir, e.Name())); err != nil {
				return fmt.Errorf("clearing incomplete data directory: %w", err)
			}
		}
	}
	pg.log.Info("creating the private PostgreSQL data directory (first run only)",
		"dir", pg.dataDir, "version", pg.bin.major)
	err = pg.run(ctx, pg.bin.initdb, "-D", pg.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
	if err != nil {
		return withLog(fmt.Errorf("initdb: %w", err), pg.logPath)
	}
	// Appending keeps the file's owner, which matters when initdb ran as
	// another user.
	conf, err := os.OpenFile(filepath.Join(pg.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening postgresql.conf: %w", err)
	}
	if _, err := conf.WriteString(privateConf); err != nil {
		conf.Close()
		return fmt.Errorf("writing postgresql.conf: %w", err)
	}
	if err := conf.Close(); err != nil {
		return fmt.Errorf("writing postgresql.conf: %w", err)
	}
	return nil
}

// adoptRunning deals with a server left running by an earlier run that
// never called stop (crash, kill -9; pg_ctl detaches the server, so it
// outlives us). A healthy one is reused; an unresponsive one is stopped so a
// fresh start can follow.
func (pg *privatePostgres) adoptRunning(ctx context.Context) (url string, stop func(), adopted bool, err error) {
	pid, port, ok := readPostmasterPID(pg.dataDir)
	if !ok || !processAlive(pid) {
		// A PID file naming a dead process is cleaned up by postgres itself.
		return "", noop, false, nil
	}
	if !isPostgresProcess(pid) {
		// The PID was reused by an unrelated process; postgres would refuse to
		// start while the file names a live process.
		pg.log.Info("removing a stale postmaster.pid", "pid", pid)
		if err := os.Remove(filepath.Join(pg.dataDir, "postmaster.pid")); err != nil {
			return "", noop, false, fmt.Errorf("removing stale postmaster.pid: %w", err)
		}
		return "", noop, false, nil
	}

	url = pg.url(port)
	if probePostgres(ctx, url) == nil {
		if err := EnsureDatabase(ctx, url); err != nil {
			return "", noop, false, fmt.Errorf("preparing private PostgreSQL: %w", err)
		}
		pg.log.Info("reusing private PostgreSQL left running by an earlier run", "url", url, "pid", pid, "log", pg.logPath)
		return url, pg.stopFunc(), true, nil
	}

	pg.log.Info("restarting an unresponsive private PostgreSQL left by an earlier run", "pid", pid)
	if err := pg.run(ctx, pg.bin.pgCtl, "stop", "-w", "-D", pg.dataDir, "-m", "fast"); err != nil {
		if err := pg.run(ctx, pg.bin.pgCtl, "stop", "-w", "-D", pg.dataDir, "-m", "immediate"); err != nil {
			return "", noop, false, withLog(fmt.Errorf("stopping the earlier private PostgreSQL: %w", err), pg.logPath)
		}
	}
	return "", noop, false, nil
}

// readPostmasterPID reads the server's PID (line 1) and port (line 4) from
// the lock file postgres keeps in its data directory while running.
func readPostmasterPID(dataDir string) (pid, port int, ok bool) {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 4 {
		return 0, 0, false
	}
	pid, err = strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return 0, 0, false
	}
	port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, 0, false
	}
	return pid, port, true
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func isPostgresProcess(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		// Without /proc, trust the PID file as postgres itself does.
		return true
	}
	return string(bytes.TrimSpace(comm)) == "postgres"
}

func (pg *privatePostgres) url(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, databaseName)
}

// start launches the server on a free loopback port. pg_ctl -w returns once
// it accepts connections.
func (pg *privatePostgres) start(ctx context.Context) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", noop, err
	}
	err = pg.run(ctx, pg.bin.pgCtl, "start", "-w", "-D", pg.dataDir, "-l", pg.logPath, "-o", "-p "+strconv.Itoa(port))
	if err != nil {
		return "", noop, withLog(fmt.Errorf("starting private PostgreSQL: %w", err), pg.logPath)
	}
	url := pg.url(port)
	stop := pg.stopFunc()
	if err := EnsureDatabase(ctx, url); err != nil {
		stop()
		return "", noop, fmt.Errorf("preparing private PostgreSQL: %w", err)
	}
	pg.log.Info("using private PostgreSQL", "url", url, "version", pg.bin.major, "data", pg.dataDir, "log", pg.logPath)
	return url, stop, nil
}

func (pg *privatePostgres) stopFunc() func() {
	return sync.OnceFunc(func() {
		if _, _, running := readPostmasterPID(pg.dataDir); !running {
			// Already stopped, e.g. by the stop func of a run that adopted it.
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), postgresStopTimeout)
		defer cancel()
		if err := pg.run(ctx, pg.bin.pgCtl, "stop", "-w", "-D", pg.dataDir, "-m", "fast"); err != nil {
			pg.log.Warn("stopping private PostgreSQL failed", "err", err, "log", pg.logPath)
			return
		}
		pg.log.Info("stopped private PostgreSQL")
	})
}

// run executes a PostgreSQL tool with its output appended to the log file,
// as the server account when we are root.
func (pg *privatePostgres) run(ctx context.Context, name string, args ...string) error {
	logFile, err := os.OpenFile(pg.logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening PostgreSQL log file: %w", err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	// The tools complain when the working directory is unreadable, as the
	// caller's may be for the server account.
	cmd.Dir = pg.stateDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if pg.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.runAs}
	}
	return cmd.Run()
}

// StartPrivatePostgres starts (or adopts) a private PostgreSQL under o.StateDir, whatever else
// runs on the machine, and returns its URL and a stop func. Tests that must stop or freeze a
// server use it, never the machine's shared one.
func StartPrivatePostgres(ctx context.Context, o Options) (url string, stop func(), err error) {
	return startPrivatePostgres(ctx, o)
}

// SignalPrivatePostgres sends sig to the private server under stateDir and to every one of its
// processes (SIGSTOP freezes the whole server: the postmaster stops accepting sessions and each
// backend stops answering; SIGCONT resumes them).
func SignalPrivatePostgres(stateDir string, sig syscall.Signal) error {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	pid, _, ok := readPostmasterPID(filepath.Join(abs, "postgres"))
	if !ok {
		return fmt.Errorf("no private PostgreSQL running under %s", abs)
	}
	pids := append([]int{pid}, childProcesses(pid)...)
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %d: %w", p, err)
		}
	}
	return nil
}

// childProcesses lists the direct children of pid from /proc.
func childProcesses(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
