package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// ServeChild runs a server as a load-test child process: it listens on
// network ("tcp" on 127.0.0.1, or "unix" in dir), writes "ready <target>"
// to out, where target is a gRPC dial target, then serves until in is
// closed. Each line read from in is a command:
//
//	stats            -> "stats <cpu ns> <mallocs> <alloc bytes>", from getrusage(RUSAGE_SELF)
//	                    and the runtime's memory statistics
//	profile <file>   -> start a CPU profile; "ok"
//	stop             -> stop it; "ok"
func ServeChild(kind, spec, network, dir string, in io.Reader, out io.Writer) error {
	ApplyRuntime(spec)
	gs, err := NewServer(kind, spec)
	if err != nil {
		return err
	}
	var lis net.Listener
	var target string
	switch network {
	case "tcp":
		lis, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			target = "passthrough:///" + lis.Addr().String()
		}
	case "unix":
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.sock", kind, os.Getpid()))
		lis, err = net.Listen("unix", path)
		target = "unix://" + path
	default:
		err = fmt.Errorf("unknown network %q: want tcp or unix", network)
	}
	if err != nil {
		return err
	}
	go gs.Serve(lis)
	defer gs.Stop()
	fmt.Fprintf(out, "ready %s\n", target)

	sc := bufio.NewScanner(in)
	var prof *os.File
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "stats":
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			cpu := ru.Utime.Nano() + ru.Stime.Nano()
			fmt.Fprintf(out, "stats %d %d %d\n", cpu, ms.Mallocs, ms.TotalAlloc)
		case "profile":
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintf(out, "error %v\n", err)
				continue
			}
			prof = f
			fmt.Fprintln(out, "ok")
		case "stop":
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
				prof = nil
			}
			fmt.Fprintln(out, "ok")
		default:
			fmt.Fprintf(out, "error unknown command %q\n", cmd)
		}
	}
	return sc.Err()
}

// DialEnvoy connects to target the way Envoy's gRPC client does: plain
// HTTP/2 with large static flow-control windows (Envoy's defaults are 256
// MiB and it runs no BDP estimation, so it sends no PINGs to measure the
// bandwidth).
func DialEnvoy(target string) (*grpc.ClientConn, error) {
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStaticStreamWindowSize(1<<28),
		grpc.WithStaticConnWindowSize(1<<28),
	)
}
