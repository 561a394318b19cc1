//! Builders for tests: a DurableJob with every field, and small edits that read as sentences.

use serde_json::json;

use crate::api::*;

impl DurableJob {
    /// A minimal valid built-in-runner DurableJob in namespace `default`.
    pub fn test(name: &str) -> Self {
        let mut dj = DurableJob::new(
            name,
            DurableJobSpec {
                schedule: ScheduleSpec {
                    cron: vec!["0 9 * * 1-5".into()],
                    time_zone: DEFAULT_TIME_ZONE.into(),
                    ..Default::default()
                },
                overlap_policy: OverlapPolicy::Skip,
                catchup_window: DEFAULT_CATCHUP_WINDOW.into(),
                pause_on_failure: false,
                suspend_after_failures: None,
                resume_after: None,
                suspend: false,
                run_limit: None,
                workflow: None,
                job_template: Some(json!({"spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}]
                }}}})),
                steps: None,
                worker: None,
                successful_runs_history_limit: 3,
                failed_runs_history_limit: 1,
                temporal: None,
                deletion_policy: DeletionPolicy::Delete,
            },
        );
        dj.metadata.namespace = Some("default".into());
        dj.metadata.uid = Some("uid-1".into());
        dj.metadata.generation = Some(1);
        dj
    }

    /// Every field of the spec set to a non-default value.
    pub fn test_full(name: &str) -> Self {
        let mut dj = Self::test(name);
        dj.spec.schedule = ScheduleSpec {
            cron: vec!["30 2 * * *".into(), "@hourly".into()],
            intervals: vec![IntervalSpec {
                every: "90m".into(),
                offset: Some("5m".into()),
            }],
            time_zone: "Europe/Berlin".into(),
            jitter: Some("30s".into()),
            start_at: Some("2026-01-01T00:00:00Z".into()),
            end_at: Some("2027-01-01T00:00:00+01:00".into()),
            exclude: Some(Exclusions {
                cron: vec!["* * * * 0,6".into()],
                dates: vec!["2026-12-24".into()],
            }),
            exclude_calendars: vec![],
        };
        // suspendAfterFailures/resumeAfter exclude pauseOnFailure: see `with_failure_streak`
        dj.spec.overlap_policy = OverlapPolicy::BufferAll;
        dj.spec.catchup_window = "1h30m".into();
        dj.spec.pause_on_failure = true;
        dj.spec.suspend = true;
        dj.spec.run_limit = Some(10);
        dj.spec.workflow = Some(WorkflowSpec {
            type_: None,
            task_queue: Some("custom-runner".into()),
            args: vec![],
            execution_timeout: Some("2h".into()),
            run_timeout: Some("1h".into()),
            task_timeout: Some("20s".into()),
            retry: Some(RetrySpec {
                initial_interval: Some("10s".into()),
                backoff_coefficient: Some(3.0),
                maximum_interval: Some("5m".into()),
                maximum_attempts: Some(4),
                non_retryable_error_types: vec!["InvalidJobTemplate".into()],
            }),
            memo: [("team".to_string(), json!("billing"))].into(),
            search_attributes: [("CustomKeywordField".to_string(), json!("nightly"))].into(),
            versioning_behavior: None,
        });
        dj.spec.successful_runs_history_limit = 5;
        dj.spec.failed_runs_history_limit = 2;
        dj.spec.temporal = Some(TemporalSpec {
            namespace: Some("jobs".into()),
        });
        dj.spec.deletion_policy = DeletionPolicy::Orphan;
        dj
    }

    /// A user-worker DurableJob.
    pub fn with_worker(mut self, workflow_type: &str) -> Self {
        self.spec.job_template = None;
        self.spec.worker = Some(WorkerSpec {
            image: "example/worker:1".into(),
            ..Default::default()
        });
        let mut wf = self.spec.workflow.take().unwrap_or_default();
        wf.type_ = Some(workflow_type.into());
        self.spec.workflow = Some(wf);
        self
    }

    pub fn with_time_zone(mut self, tz: &str) -> Self {
        self.spec.schedule.time_zone = tz.into();
        self
    }

    /// Paused after `after` failed runs in a row, resuming after `resume_after` if given.
    pub fn with_failure_streak(mut self, after: i32, resume_after: Option<&str>) -> Self {
        self.spec.suspend_after_failures = Some(after);
        self.spec.resume_after = resume_after.map(str::to_string);
        self
    }

    pub fn with_cron(mut self, cron: &[&str]) -> Self {
        self.spec.schedule.cron = cron.iter().map(|c| c.to_string()).collect();
        self
    }

    pub fn with_overlap(mut self, p: OverlapPolicy) -> Self {
        self.spec.overlap_policy = p;
        self
    }

    pub fn suspended(mut self) -> Self {
        self.spec.suspend = true;
        self
    }

    pub fn with_status(mut self, status: DurableJobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// The schedule the operator would build for this resource (namespace `default`, uid `uid-1`,
    /// default settings); panics when the spec is invalid.
    pub fn desired_schedule(&self) -> crate::desired::schedule::DesiredSchedule {
        let valid = crate::desired::validate::validate(&self.spec).expect("a valid spec");
        let name = self.metadata.name.clone().expect("a name");
        crate::desired::schedule::desired(
            &crate::desired::schedule::ResourceRef {
                namespace: "default",
                name: &name,
                uid: "uid-1",
            },
            &valid,
            &[],
            &crate::settings::Settings::default(),
        )
    }
}

impl DurableJobStatus {
    /// The status of a resource whose schedule `schedule_id` is in sync for generation 1.
    pub(crate) fn synced(schedule_id: &str, at: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            observed_generation: Some(1),
            schedule_id: Some(schedule_id.into()),
            conditions: vec![Condition {
                type_: "ScheduleSynced".into(),
                status: "True".into(),
                reason: "Synced".into(),
                message: String::new(),
                last_transition_time: at,
                observed_generation: Some(1),
            }],
            ..Default::default()
        }
    }
}

impl crate::temporal::ObservedSchedule {
    /// A schedule Temporal describes with nothing set; tests fill in what they need.
    pub(crate) fn test() -> Self {
        Self::default()
    }
}
