//! The install artifacts as users meet them, judged by the real tools (`helm` and `kubectl`
//! built into `.tools/bin/` by `make cluster-tools`): the charts lint and render for the
//! default values and for several value sets, bad values are refused by values.schema.json
//! with a message naming the field, the CRD chart carries exactly the generated CRD, and the
//! kustomize default overlay renders the same objects as the charts' defaults, and the alerts
//! pass their `promtool test rules` cases (promtool from Debian's pinned Prometheus, put into
//! `.tools/bin/` by `make prometheus-tools`).

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    let path = root().join(".tools/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make cluster-tools prometheus-tools` (make test does)",
        path.display()
    );
    path
}

/// Runs a tool, giving whether it succeeded, stdout and stderr.
fn run(name: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tool(name))
        .args(args)
        .current_dir(root())
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("durablejob-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("durablejob-helm-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("durablejob-helm-data"),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn docs(yaml: &str) -> Vec<Value> {
    yaml.split("\n---")
        .filter_map(|d| durablejob::yaml::document::<Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

/// `helm template` of a chart with `--set` values (release `durablejob` in durablejob-system).
fn render(chart: &str, sets: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "durablejob",
        chart,
        "--namespace",
        "durablejob-system",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, out, err) = run("helm", &args);
    assert!(ok, "helm template {chart} {sets:?} failed: {err}");
    docs(&out)
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn containers(o: &Value) -> &Vec<Value> {
    o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("a Deployment has containers")
}

#[test]
fn the_charts_lint_cleanly() {
    let (ok, out, err) = run(
        "helm",
        &["lint", "--strict", "charts/durablejob", "charts/durablejob-crds"],
    );
    assert!(ok, "helm lint failed:\n{out}\n{err}");
}

#[test]
fn the_crd_chart_renders_exactly_the_generated_crd_and_keeps_it_on_uninstall() {
    // the chart renders its files in name order
    let mut generated = docs(&durablejob::crd::all_yaml());
    generated.sort_by(|a, b| name(a).cmp(name(b)));
    let rendered = render("charts/durablejob-crds", &[]);
    assert_eq!(rendered.len(), generated.len());
    for (mut chart, code) in rendered.into_iter().zip(generated) {
        let meta = &mut chart["metadata"];
        assert_eq!(meta["annotations"]["helm.sh/resource-policy"], "keep");
        assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "Helm");
        strip_helm(&mut chart);
        for label in ["instance", "part-of", "version"] {
            chart["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove(&format!("app.kubernetes.io/{label}"));
        }
        if chart["metadata"]["labels"]
            .as_object()
            .is_some_and(|l| l.is_empty())
        {
            chart["metadata"].as_object_mut().unwrap().remove("labels");
        }
        assert!(
            numbers_as_floats(chart) == numbers_as_floats(code),
            "the CRD chart differs from `durablejob crd`"
        );
    }
    let dropped = render("charts/durablejob-crds", &["keep=false"]);
    assert!(dropped[0]["metadata"]["annotations"]["helm.sh/resource-policy"].is_null());
}

#[test]
fn the_default_values_render_a_safe_operator_and_runner() {
    let objects = render("charts/durablejob", &[]);
    let kinds: BTreeMap<String, usize> = objects.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(o["kind"].as_str().unwrap().to_string()).or_default() += 1;
        m
    });
    let expected: BTreeMap<String, usize> = [
        // operator, runner, and the user roles aggregated into view/edit/admin
        ("ClusterRole", 4),
        ("ClusterRoleBinding", 2),
        ("Deployment", 2),
        ("Lease", 1),
        ("Role", 1),
        ("RoleBinding", 1),
        ("Service", 2),
        ("ServiceAccount", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds, expected);
    for d in of_kind(&objects, "Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{}", name(d));
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(d["spec"]["replicas"], 2);
        for c in containers(d) {
            let sc = &c["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["readOnlyRootFilesystem"], true);
            assert_eq!(sc["capabilities"]["drop"][0], "ALL");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(c["image"], "ghcr.io/durablejob/durablejob:0.1.0");
        }
    }
    let operator = of_kind(&objects, "Deployment")
        .into_iter()
        .find(|d| name(d) == "durablejob-operator")
        .expect("the operator Deployment");
    let args = &containers(operator)[0]["args"];
    assert!(
        args.as_array().unwrap().iter().any(|a| a == "--leader-elect"),
        "leader election is on by default: {args}"
    );
    no_wildcards(&objects);
}

/// Every rule names its groups, resources and verbs.
fn no_wildcards(objects: &[Value]) {
    for role in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        for rule in role["rules"].as_array().expect("rules") {
            for field in ["apiGroups", "resources", "verbs"] {
                for v in rule[field].as_array().unwrap_or(&vec![]) {
                    assert!(v != "*", "{} has a wildcard in {field}: {rule}", name(role));
                }
            }
        }
    }
}

#[test]
fn watch_namespaces_grant_roles_in_those_namespaces_only() {
    let objects = render("charts/durablejob", &["watchNamespaces={team-a,team-b}"]);
    // only the user roles, which grant nothing until Kubernetes' view/edit/admin are bound
    let cluster_roles: Vec<&str> = of_kind(&objects, "ClusterRole").iter().map(|r| name(r)).collect();
    assert_eq!(cluster_roles, ["durablejob-view", "durablejob-edit"]);
    assert!(of_kind(&objects, "ClusterRoleBinding").is_empty());
    let mut roles: Vec<(String, String)> = of_kind(&objects, "Role")
        .iter()
        .map(|r| {
            (
                r["metadata"]["namespace"].as_str().unwrap().to_string(),
                name(r).to_string(),
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            ("durablejob-system", "durablejob-leader-election"),
            ("team-a", "durablejob-operator"),
            ("team-a", "durablejob-runner"),
            ("team-b", "durablejob-operator"),
            ("team-b", "durablejob-runner"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let operator = of_kind(&objects, "Deployment")[0];
    assert!(
        containers(operator)[0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--watch-namespaces=team-a,team-b")
    );
    no_wildcards(&objects);
}

#[test]
fn value_sets_render_what_they_ask_for() {
    // Temporal Cloud: TLS with a client certificate and an API key, both from Secrets.
    let objects = render(
        "charts/durablejob",
        &[
            "temporal.address=ns.acct.tmprl.cloud:7233",
            "temporal.namespace=ns.acct",
            "temporal.tls.enabled=true",
            "temporal.tls.secretName=temporal-mtls",
            "temporal.apiKey.secretName=temporal-api-key",
            "temporal.workers.tlsSecretName=worker-mtls",
            "temporal.workers.apiKeySecretName=worker-key",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "operator.runEvents=all",
        ],
    );
    // user workers are told the same connection, from Secrets of their own namespace
    let operator_args = args(&objects, "durablejob-operator");
    for a in [
        "--run-events=all",
        "--worker-temporal-tls=true",
        "--worker-temporal-tls-secret=worker-mtls",
        "--worker-temporal-api-key-secret=worker-key:api-key",
    ] {
        assert!(operator_args.contains(&a.to_string()), "{a} in {operator_args:?}");
    }
    for d in of_kind(&objects, "Deployment") {
        let c = &containers(d)[0];
        let env: BTreeMap<&str, &Value> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), &e["value"]))
            .collect();
        assert_eq!(env["TEMPORAL_ADDRESS"], "ns.acct.tmprl.cloud:7233");
        assert_eq!(env["TEMPORAL_TLS"], "true");
        assert_eq!(
            env["TEMPORAL_TLS_CLIENT_CERT_PATH"],
            "/etc/durablejob/temporal-tls/tls.crt"
        );
        assert!(
            !env.contains_key("TEMPORAL_API_KEY"),
            "the API key is a mounted file, never an env value"
        );
        assert!(
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--temporal-api-key-file=/etc/durablejob/temporal-api-key/api-key")
        );
        let volumes = d["spec"]["template"]["spec"]["volumes"].to_string();
        assert!(volumes.contains("temporal-mtls") && volumes.contains("temporal-api-key"));
        assert!(
            c["image"]
                .as_str()
                .unwrap()
                .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
    }

    // Monitoring and disruption budgets, no runner.
    let objects = render(
        "charts/durablejob",
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "operator.podDisruptionBudget.enabled=true",
            "runner.enabled=false",
            "operator.leaderElection.enabled=false",
            "operator.replicas=1",
        ],
    );
    assert_eq!(of_kind(&objects, "Deployment").len(), 1);
    assert!(
        args(&objects, "durablejob-operator").contains(&"--no-builtin-runner".to_string()),
        "without the runner, the operator refuses jobTemplates instead of making schedules nobody runs"
    );
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 1);
    assert_eq!(of_kind(&objects, "PodDisruptionBudget").len(), 1);
    assert!(
        of_kind(&objects, "Role").is_empty(),
        "no Lease role without leader election"
    );
    let rule = of_kind(&objects, "PrometheusRule")[0];
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        alerts,
        [
            "DurableJobRunFailed",
            "DurableJobRunsMissed",
            "DurableJobRunsSkipped",
            "DurableJobNoRecentSuccess",
            "DurableJobScheduleNotSynced",
            "DurableJobOperatorNotLeading"
        ]
    );

    // Scheduling fields reach the pod.
    let objects = render(
        "charts/durablejob",
        &[
            "runner.nodeSelector.pool=batch",
            "runner.priorityClassName=high",
            "runner.tolerations[0].key=batch",
            "runner.tolerations[0].operator=Exists",
            "runner.extraArgs[0]=--job-poll-interval=5s",
            "operator.podAnnotations.team=platform",
        ],
    );
    let runner = of_kind(&objects, "Deployment")
        .into_iter()
        .find(|d| name(d) == "durablejob-runner")
        .unwrap();
    let pod = &runner["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["pool"], "batch");
    assert_eq!(pod["priorityClassName"], "high");
    assert_eq!(pod["tolerations"][0]["key"], "batch");
    assert!(
        containers(runner)[0]["args"]
            .to_string()
            .contains("--job-poll-interval=5s")
    );
}

#[test]
fn bad_values_are_refused_with_the_field_named() {
    for (set, field) in [
        ("temporal.address=http://temporal:7233", "address"),
        ("operator.replicas=-1", "replicas"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        (
            "operator.leaderElection.leaseDuration=15 seconds",
            "leaseDuration",
        ),
        ("operatorReplicas=2", "operatorReplicas"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("scheduleIdPrefix=a:b", "scheduleIdPrefix"),
        ("operator.maxConcurrentReconciles=0", "maxConcurrentReconciles"),
        ("operator.runEvents=some", "runEvents"),
        ("temporal.namespaceGrants.Team_A={payments}", "namespaceGrants"),
        ("temporal.namespaceGrants.team-a=payments", "namespaceGrants"),
        ("temporal.namespaceGrants.team-a={a=b}", "namespaceGrants"),
    ] {
        let (ok, _, err) = run(
            "helm",
            &["template", "durablejob", "charts/durablejob", "--set", set],
        );
        assert!(!ok, "{set} was accepted");
        assert!(
            err.contains("values don't meet the specifications of the schema") && err.contains(field),
            "{set}: the error does not name {field}:\n{err}"
        );
    }
}

/// Helm's YAML round trip writes `0.0` as `0`: compare numbers as numbers.
fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_floats).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect()),
        other => other,
    }
}

/// Drops what only Helm adds, so a chart's object compares with kustomize's and the code's.
fn strip_helm(o: &mut Value) {
    fn strip(meta: &mut Value) {
        for (field, keys) in [
            ("labels", ["helm.sh/chart", "app.kubernetes.io/managed-by"]),
            (
                "annotations",
                ["helm.sh/resource-policy", "meta.helm.sh/release-name"],
            ),
        ] {
            let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) else {
                continue;
            };
            for k in keys {
                map.remove(k);
            }
            if map.is_empty() {
                meta.as_object_mut().unwrap().remove(field);
            }
        }
    }
    strip(&mut o["metadata"]);
    if o["spec"]["template"]["metadata"].is_object() {
        strip(&mut o["spec"]["template"]["metadata"]);
    }
}

fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|mut o| {
            strip_helm(&mut o);
            let key = format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                name(&o)
            );
            (key, o)
        })
        .collect()
}

#[test]
fn the_kustomize_default_overlay_renders_what_the_charts_install_by_default() {
    let (ok, out, err) = run("kubectl", &["kustomize", "config/default"]);
    assert!(ok, "kubectl kustomize config/default failed: {err}");
    let mut kustomized = by_key(docs(&out));
    // The overlay also creates its namespace; Helm leaves that to --create-namespace.
    assert!(kustomized.remove("Namespace//durablejob-system").is_some());
    let mut charted = render("charts/durablejob-crds", &[]);
    charted.extend(render("charts/durablejob", &[]));
    let charted = by_key(charted);
    assert_eq!(
        kustomized.keys().collect::<Vec<_>>(),
        charted.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, k) in &kustomized {
        pretty_assertions::assert_eq!(
            k,
            &charted[key],
            "{key} differs between config/default and the chart"
        );
    }
}

#[test]
fn the_charts_and_the_overlay_carry_the_crate_version() {
    let version = env!("CARGO_PKG_VERSION");
    for chart in [
        "charts/durablejob/Chart.yaml",
        "charts/durablejob-crds/Chart.yaml",
    ] {
        let c: Value =
            durablejob::yaml::document(&std::fs::read_to_string(root().join(chart)).unwrap()).unwrap();
        assert_eq!(c["version"], version, "{chart}");
        assert_eq!(c["appVersion"], version, "{chart}");
    }
    let k = std::fs::read_to_string(root().join("config/default/kustomization.yaml")).unwrap();
    assert!(
        k.contains(&format!("newTag: \"{version}\""))
            && k.contains(&format!("app.kubernetes.io/version: \"{version}\"")),
        "config/default/kustomization.yaml names another version than {version}"
    );
}

/// The first container's args of Deployment `deployment` among rendered `objects`.
fn args(objects: &[Value], deployment: &str) -> Vec<String> {
    let d = of_kind(objects, "Deployment")
        .into_iter()
        .find(|d| name(d) == deployment)
        .unwrap_or_else(|| panic!("{deployment}"));
    containers(d)[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_runners_temporal_namespaces_reach_the_runner_and_the_operator() {
    let objects = render("charts/durablejob", &["runner.temporalNamespaces={default,jobs}"]);
    let args_of = |deployment: &str| args(&objects, deployment);
    assert!(args_of("durablejob-runner").contains(&"--temporal-namespaces=default,jobs".to_string()));
    assert!(args_of("durablejob-operator").contains(&"--runner-namespaces=default,jobs".to_string()));
    let defaults = render("charts/durablejob", &[]);
    assert!(
        !serde_json::to_string(&defaults).unwrap().contains("-namespaces="),
        "by default both use temporal.namespace"
    );
    assert!(!args(&defaults, "durablejob-operator").contains(&"--no-builtin-runner".to_string()));
}

#[test]
fn temporal_namespace_grants_reach_the_operator_only_and_default_to_none() {
    let objects = render(
        "charts/durablejob",
        &[
            "temporal.namespaceGrants.team-a={payments,billing}",
            "temporal.namespaceGrants.*={shared}",
        ],
    );
    let args_of = |deployment: &str| args(&objects, deployment);
    let operator = args_of("durablejob-operator");
    for grant in [
        "--temporal-namespace-grant=*=shared",
        "--temporal-namespace-grant=team-a=payments,billing",
    ] {
        assert!(operator.contains(&grant.to_string()), "{grant} in {operator:?}");
    }
    assert!(!args_of("durablejob-runner").iter().any(|a| a.contains("grant")));
    let defaults = render("charts/durablejob", &[]);
    assert!(
        !serde_json::to_string(&defaults)
            .unwrap()
            .contains("--temporal-namespace-grant"),
        "by default every namespace may use temporal.namespace only"
    );
}

/// Runs promtool in `dir`: whether it succeeded, and what it printed.
fn promtool(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The chart's alerts under Prometheus's own rule engine: `promtool check rules` loads them, and
/// `promtool test rules` runs tests/alerts/durablejob.test.yaml (each alert fires on the series
/// that should fire it and stays silent on a healthy DurableJob). Every alert needs a case there.
#[test]
fn every_alert_loads_and_passes_its_promtool_cases() {
    let objects = render("charts/durablejob", &["metrics.prometheusRule.enabled=true"]);
    let rule = of_kind(&objects, "PrometheusRule")[0];
    let dir = std::env::temp_dir().join(format!("durablejob-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // the PrometheusRule's spec is a Prometheus rule file (JSON is YAML)
    std::fs::write(
        dir.join("rules.yaml"),
        serde_json::to_vec_pretty(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let cases = std::fs::read_to_string(root().join("tests/alerts/durablejob.test.yaml")).unwrap();
    std::fs::write(dir.join("durablejob.test.yaml"), &cases).unwrap();
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let alert = r["alert"].as_str().unwrap();
        assert!(
            cases.contains(&format!("alertname: {alert}\n")),
            "alert {alert} has no case in tests/alerts/durablejob.test.yaml"
        );
    }
    let (ok, out) = promtool(&dir, &["check", "rules", "rules.yaml"]);
    assert!(ok && out.contains("SUCCESS: 6 rules found"), "{out}");
    let (ok, out) = promtool(&dir, &["test", "rules", "durablejob.test.yaml"]);
    assert!(ok, "promtool test rules:\n{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Grafana dashboard: opt-in as a ConfigMap the kube-prometheus-stack sidecar loads (its
/// label, the JSON exactly the plain file), template variables for namespace and DurableJob, and
/// every panel's query valid PromQL for Prometheus's own parser (each becomes a recording rule
/// that `promtool check rules` loads).
#[test]
fn the_dashboard_ships_opt_in_and_every_panel_query_parses() {
    let file = root().join("charts/durablejob/files/durablejob-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        of_kind(&render("charts/durablejob", &[]), "ConfigMap")
            .iter()
            .all(|c| !name(c).ends_with("-dashboard")),
        "off by default"
    );
    let objects = render("charts/durablejob", &["metrics.grafanaDashboard.enabled=true"]);
    let map = of_kind(&objects, "ConfigMap")
        .into_iter()
        .find(|c| name(c) == "durablejob-dashboard")
        .expect("the dashboard ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Value = serde_json::from_str(map["data"]["durablejob.json"].as_str().unwrap()).unwrap();
    assert_eq!(shipped, dashboard, "the ConfigMap carries the file as it is");

    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "namespace", "name"]);
    // as Grafana would send them with "All" chosen
    let exprs: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            assert!(
                p["description"].as_str().is_some_and(|d| !d.is_empty()),
                "panel {title} says what it shows"
            );
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect();
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            let e = e
                .replace("$namespace", ".*")
                .replace("$name", ".*")
                .replace("$__rate_interval", "5m");
            serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": e})
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("durablejob-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("panels.yaml");
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({"groups": [{"name": "panels", "rules": rules}]})).unwrap(),
    )
    .unwrap();
    let (ok, text) = promtool(&dir, &["check", "rules", "panels.yaml"]);
    assert!(
        ok && text.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "a panel's query does not parse:\n{text}\n{exprs:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
