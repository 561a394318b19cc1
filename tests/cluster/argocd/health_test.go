// Package argocd runs durablejob's Argo CD health check (gitops/argocd) the way Argo CD runs
// a health script: gopher-lua, the interpreter Argo CD embeds, with only the package, base
// and table libraries open (a script from argocd-cm gets no string library unless
// useOpenLibs is set), the resource as the global `obj`, and a table returned. Each case of
// health_test.yaml must get its status and message.
package argocd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const dir = "../../../gitops/argocd/resource_customizations/durablejob.dev/DurableJob"

type testCases struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

// toLua turns decoded JSON into Lua values (numbers as Lua numbers, objects as tables).
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

func health(t *testing.T, script string, obj map[string]any) (string, string) {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			t.Fatalf("opening %s: %v", name, err)
		}
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		t.Fatalf("the health script failed: %v", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the health script returned %s, not a table", l.Get(-1).Type())
	}
	return lua.LVAsString(ret.RawGetString("status")), lua.LVAsString(ret.RawGetString("message"))
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := json.Unmarshal(js, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func script(t *testing.T) string {
	raw, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestHealthOfEverySampleStatus(t *testing.T) {
	var cases testCases
	readYAML(t, filepath.Join(dir, "health_test.yaml"), &cases)
	if len(cases.Tests) < 8 {
		t.Fatalf("only %d cases in health_test.yaml", len(cases.Tests))
	}
	valid := map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true}
	src := script(t)
	for _, c := range cases.Tests {
		t.Run(strings.TrimSuffix(filepath.Base(c.InputPath), ".yaml"), func(t *testing.T) {
			var obj map[string]any
			readYAML(t, filepath.Join(dir, c.InputPath), &obj)
			status, message := health(t, src, obj)
			if !valid[status] {
				t.Fatalf("%q is not an Argo CD health status", status)
			}
			if status != c.HealthStatus.Status || message != c.HealthStatus.Message {
				t.Errorf("got %s %q\nwant %s %q", status, message, c.HealthStatus.Status, c.HealthStatus.Message)
			}
		})
	}
}

// A failed run never changes the health: only the message tells it.
func TestARunsOutcomeNeverChangesTheHealth(t *testing.T) {
	var obj map[string]any
	readYAML(t, filepath.Join(dir, "testdata/healthy.yaml"), &obj)
	src := script(t)
	want, _ := health(t, src, obj)
	runs := obj["status"].(map[string]any)["recentRuns"].([]any)
	for _, result := range []string{"Running", "Failed", "TimedOut", "Canceled", "Terminated", "Succeeded"} {
		runs[0].(map[string]any)["result"] = result
		if got, message := health(t, src, obj); got != want {
			t.Errorf("a %s run turned %s into %s (%s)", result, want, got, message)
		}
	}
}

// The argocd-cm snippet carries the same script.
func TestTheConfigMapSnippetCarriesTheScript(t *testing.T) {
	var cm struct {
		Data map[string]string `json:"data"`
	}
	readYAML(t, "../../../gitops/argocd/argocd-cm.yaml", &cm)
	got := cm.Data["resource.customizations.health.durablejob.dev_DurableJob"]
	if got != script(t) {
		t.Fatal("gitops/argocd/argocd-cm.yaml does not carry health.lua as it is: run `make gitops` and commit the result")
	}
}
