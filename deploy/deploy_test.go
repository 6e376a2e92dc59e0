// Package deploy_test checks the deploy kit with the real tools and types:
// systemd's units with Debian's `systemd-analyze verify`, the Kubernetes
// manifests decoded strictly into k8s.io/api's types, the Nomad job into
// github.com/hashicorp/nomad/api's Job, the SSM association into
// aws-sdk-go-v2's CreateAssociationInput, and every s3bak command line of the
// kit against the s3bak built from this tree (its flags must exist).
//
// The kit lives in a module of its own (deploy/go.mod), so these test-only
// dependencies stay out of s3bak's module; `make test` runs it.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/hashicorp/cronexpr"
	nomad "github.com/hashicorp/nomad/api"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// installedBinary is where every file of the kit expects s3bak.
const installedBinary = "/usr/local/bin/s3bak"

var s3bakBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "s3bak-deploy-test")
	if err != nil {
		panic(err)
	}
	s3bakBinary = filepath.Join(dir, "s3bak")
	build := exec.Command("go", "build", "-o", s3bakBinary, "./cmd/s3bak")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("building s3bak: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// checkCommand runs the built s3bak with args and --help: cobra parses every
// flag before it looks at --help, so an unknown flag or command, or a flag
// without its value, fails here, and nothing runs.
func checkCommand(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 || (args[0] != "backup" && args[0] != "purge") {
		t.Fatalf("%s: want an s3bak backup or purge command, got %q", where, args)
	}
	cmd := exec.Command(s3bakBinary, append(slices.Clone(args), "--help")...)
	cmd.Env = append(os.Environ(), "S3BAK_CONFIG=/nonexistent/s3bak-deploy-test.yaml")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: s3bak %s: %v\n%s", where, strings.Join(args, " "), err, out)
	}
}

// s3bakArgs returns the arguments after the s3bak binary in a shell-free
// command line (the kit's lines quote nothing).
func s3bakArgs(t *testing.T, where, line string) []string {
	t.Helper()
	fields := strings.Fields(line)
	for i, f := range fields {
		if f == "s3bak" || f == installedBinary {
			return fields[i+1:]
		}
	}
	t.Fatalf("%s: no s3bak command in %q", where, line)
	return nil
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeStrict decodes JSON into v and fails on a key v's type does not have
// and on anything after the value.
func decodeStrict(t *testing.T, name string, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON value", name)
	}
}

func TestCron(t *testing.T) {
	const name = "cron/s3bak"
	var backups, purges int
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, name)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if strings.Contains(fields[0], "=") {
			continue // an environment line
		}
		// /etc/cron.d: five time fields, the user, the command.
		if len(fields) < 8 {
			t.Fatalf("%s:%d: want minute hour day month weekday user command: %q", name, n, line)
		}
		// Nomad's cron parser (the cron format's five fields) reads the times.
		if _, err := cronexpr.Parse(strings.Join(fields[:5], " ")); err != nil {
			t.Errorf("%s:%d: %v", name, n, err)
		}
		if fields[5] != "cassandra" {
			t.Errorf("%s:%d: runs as %q, want cassandra", name, n, fields[5])
		}
		args := s3bakArgs(t, name, strings.Join(fields[6:], " "))
		checkCommand(t, name, args)
		switch args[0] {
		case "backup":
			backups++
			for _, want := range []string{"--config /etc/s3bak/config.yaml", "--snapshot", "--tag auto"} {
				if !strings.Contains(strings.Join(args, " "), want) {
					t.Errorf("%s:%d: the backup lacks %s", name, n, want)
				}
			}
			// the nightly run and its retry later in the night
			if hours := strings.Split(fields[1], ","); len(hours) < 2 {
				t.Errorf("%s:%d: want a run and a retry in the hour field, got %q", name, n, fields[1])
			}
		case "purge":
			purges++
			if fields[4] == "*" {
				t.Errorf("%s:%d: the purge should run weekly, not every day", name, n)
			}
			if slices.Contains(args, "--all-nodes") {
				t.Errorf("%s:%d: each node purges its own backups: no --all-nodes", name, n)
			}
		}
	}
	if backups != 1 || purges != 1 {
		t.Errorf("%s: want one backup line and one purge line, got %d and %d", name, backups, purges)
	}
}

// TestSystemdUnits runs Debian's systemd-analyze verify on the units, with
// ExecStart pointing at the s3bak built from this tree (verify checks that
// the binary exists), and fails on any diagnostic it prints.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is missing: run `make tools` (installs Debian's systemd)")
	}
	units, err := filepath.Glob("systemd/*")
	if err != nil || len(units) != 4 {
		t.Fatalf("want the 4 units in systemd/, got %v (%v)", units, err)
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		text := string(readFile(t, u))
		if strings.HasSuffix(u, ".service") {
			var execStart string
			for line := range strings.Lines(text) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ExecStart="); ok {
					execStart = v
				}
			}
			if !strings.HasPrefix(execStart, installedBinary+" ") {
				t.Fatalf("%s: ExecStart should run %s: %q", u, installedBinary, execStart)
			}
			checkCommand(t, u, s3bakArgs(t, u, execStart))
			for _, want := range []string{"User=cassandra", "Nice=19", "IOSchedulingClass=idle", "EnvironmentFile=-/etc/s3bak/env", "TimeoutStartSec="} {
				if !strings.Contains(text, "\n"+want) {
					t.Errorf("%s: lacks %s", u, want)
				}
			}
			text = strings.ReplaceAll(text, installedBinary, s3bakBinary)
		} else {
			for _, want := range []string{"OnCalendar=", "RandomizedDelaySec=", "Persistent=true", "WantedBy=timers.target"} {
				if !strings.Contains(text, "\n"+want) {
					t.Errorf("%s: lacks %s", u, want)
				}
			}
		}
		p := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		out, err := exec.Command(analyze, "verify", p).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
	// The check has teeth: a unit naming a missing binary or an unknown key
	// is reported.
	bad := filepath.Join(dir, "s3bak-bad.service")
	if err := os.WriteFile(bad, []byte("[Service]\nType=oneshot\nExecStart=/nonexistent/s3bak backup\nNicety=19\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(analyze, "verify", bad).CombinedOutput(); !bytes.Contains(out, []byte("/nonexistent/s3bak")) || !bytes.Contains(out, []byte("Nicety")) {
		t.Errorf("systemd-analyze verify did not report a bad unit:\n%s", out)
	}
}

func TestKubernetesCronJob(t *testing.T) {
	const name = "kubernetes/cronjob.yaml"
	var docs [][]byte
	for doc := range strings.SplitSeq(string(readFile(t, name)), "\n---\n") {
		if strings.TrimSpace(doc) != "" {
			docs = append(docs, []byte(doc))
		}
	}
	if len(docs) != 2 {
		t.Fatalf("%s: want a ServiceAccount and a CronJob, got %d documents", name, len(docs))
	}
	toJSON := func(doc []byte) []byte {
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return j
	}

	var sa corev1.ServiceAccount
	decodeStrict(t, name+" (ServiceAccount)", toJSON(docs[0]), &sa)
	if sa.Kind != "ServiceAccount" || sa.APIVersion != "v1" {
		t.Fatalf("first document: %s %s, want v1 ServiceAccount", sa.APIVersion, sa.Kind)
	}
	if arn := sa.Annotations["eks.amazonaws.com/role-arn"]; !strings.HasPrefix(arn, "arn:aws:iam::") {
		t.Errorf("the ServiceAccount's IRSA annotation eks.amazonaws.com/role-arn is %q", arn)
	}

	var cj batchv1.CronJob
	decodeStrict(t, name+" (CronJob)", toJSON(docs[1]), &cj)
	if cj.Kind != "CronJob" || cj.APIVersion != "batch/v1" {
		t.Fatalf("second document: %s %s, want batch/v1 CronJob", cj.APIVersion, cj.Kind)
	}
	if cj.Spec.Schedule != "15 2,5 * * *" {
		t.Errorf("schedule %q", cj.Spec.Schedule)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name || sa.Namespace != cj.Namespace {
		t.Errorf("the pod's service account %q is not the ServiceAccount %s/%s", pod.ServiceAccountName, sa.Namespace, sa.Name)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	cmd := append(slices.Clone(c.Command), c.Args...)
	if len(cmd) < 2 || cmd[0] != installedBinary || cmd[1] != "backup" {
		t.Fatalf("the container runs %q, want %s backup", cmd, installedBinary)
	}
	checkCommand(t, name, cmd[1:])
	joined := strings.Join(cmd, " ")
	for _, want := range []string{"--snapshot", "--tag auto", "--data-dir /var/lib/cassandra/data", "--nodetool"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the command %q lacks %s", joined, want)
		}
	}
	// The data directory is on the mounted Cassandra volume.
	var claim string
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && strings.HasPrefix("/var/lib/cassandra/data", m.MountPath) {
					claim = v.PersistentVolumeClaim.ClaimName
				}
			}
		}
	}
	if claim != "data-cassandra-0" {
		t.Errorf("the data directory is not on the Cassandra pod's volume (claim %q)", claim)
	}
	if pod.Affinity == nil || pod.Affinity.PodAffinity == nil || len(pod.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
		t.Errorf("no required pod affinity: the job may land on another node than the ReadWriteOnce volume's pod")
	}
}

func TestNomadJob(t *testing.T) {
	const name = "nomad/s3bak.nomad.json"
	// `nomad job run -json` takes the API's JSON form, the job under "Job".
	var file struct{ Job *nomad.Job }
	decodeStrict(t, name, readFile(t, name), &file)
	job := file.Job
	if job == nil {
		t.Fatalf("%s: no Job", name)
	}
	if job.Type == nil || *job.Type != "sysbatch" {
		t.Errorf("Type %v, want sysbatch (runs on every client node)", job.Type)
	}
	p := job.Periodic
	if p == nil || p.Spec == nil || *p.Spec == "" {
		t.Fatalf("%s: no Periodic.Spec", name)
	}
	if *p.Spec != "15 2,5 * * *" || p.TimeZone == nil || *p.TimeZone != "UTC" || p.ProhibitOverlap == nil || !*p.ProhibitOverlap {
		t.Errorf("periodic: spec %q, time zone %v, prohibit overlap %v", *p.Spec, p.TimeZone, p.ProhibitOverlap)
	}
	if len(job.TaskGroups) != 1 || len(job.TaskGroups[0].Tasks) != 1 {
		t.Fatalf("%s: want one group with one task", name)
	}
	task := job.TaskGroups[0].Tasks[0]
	if task.Driver != "raw_exec" || task.Config["command"] != installedBinary {
		t.Errorf("task: driver %q, command %v", task.Driver, task.Config["command"])
	}
	raw, ok := task.Config["args"].([]any)
	if !ok {
		t.Fatalf("task args: %T", task.Config["args"])
	}
	var args []string
	for _, a := range raw {
		s, ok := a.(string)
		if !ok {
			t.Fatalf("task arg %v is not a string", a)
		}
		args = append(args, s)
	}
	checkCommand(t, name, args)
	if j := strings.Join(args, " "); !strings.Contains(j, "backup --config /etc/s3bak/config.yaml --snapshot --tag auto") {
		t.Errorf("task args %q", j)
	}
	// Nomad's own cron parser: after the 02:15 run comes the 05:15 retry.
	after := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	if next, err := p.Next(after); err != nil || !next.Equal(time.Date(2026, 11, 30, 5, 15, 0, 0, time.UTC)) {
		t.Errorf("periodic spec: next run after %v is %v (%v), want 05:15 the same day", after, next, err)
	}
}

func TestSSMAssociation(t *testing.T) {
	const name = "ssm/association.json"
	var in ssm.CreateAssociationInput
	decodeStrict(t, name, readFile(t, name), &in)
	if in.Name == nil || *in.Name != "AWS-RunShellScript" {
		t.Errorf("document %v, want AWS-RunShellScript", in.Name)
	}
	if len(in.Targets) != 1 || in.Targets[0].Key == nil || !strings.HasPrefix(*in.Targets[0].Key, "tag:") || len(in.Targets[0].Values) == 0 {
		t.Errorf("targets %+v: want the instances with a tag", in.Targets)
	}
	if in.ScheduleExpression == nil || !strings.HasPrefix(*in.ScheduleExpression, "cron(") {
		t.Errorf("schedule %v", in.ScheduleExpression)
	}
	var backups int
	for _, c := range in.Parameters["commands"] {
		if strings.Contains(c, installedBinary) {
			backups++
			args := s3bakArgs(t, name, c)
			checkCommand(t, name, args)
			if j := strings.Join(args, " "); !strings.Contains(j, "--snapshot --tag auto") {
				t.Errorf("command %q", c)
			}
			if !strings.Contains(c, "runuser -u cassandra --") {
				t.Errorf("the command runs as root (SSM's user), not cassandra: %q", c)
			}
		}
	}
	if backups != 1 {
		t.Errorf("want one s3bak command in the commands parameter, got %d", backups)
	}
}
