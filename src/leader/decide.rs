//! The election rule as a pure function, the one client-go uses: a Lease held by someone else
//! is theirs until it has not changed for a whole lease duration as *this* process observed it
//! (local clock, so skew between machines does not matter); otherwise it is taken or renewed.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime, jiff::Timestamp,
};

/// What the next write to the Lease is, or who holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// No Lease yet: create it holding it.
    Create(LeaseSpec),
    /// Take a Lease that is free or has expired (a new term: transitions + 1).
    Take(LeaseSpec),
    /// Renew the Lease this process holds.
    Renew(LeaseSpec),
    /// Someone else holds a live Lease.
    HeldBy(String),
}

/// Decides from the Lease as read (`None`: it does not exist) and for how long this process
/// has seen it unchanged.
pub(crate) fn decide(
    current: Option<&LeaseSpec>,
    unchanged_for: Duration,
    me: &str,
    lease_duration: Duration,
    now: Timestamp,
) -> Decision {
    let seconds = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let fresh = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(lease) = current else {
        return Decision::Create(fresh(0, None));
    };
    let holder = lease.holder_identity.as_deref().unwrap_or_default();
    let transitions = lease.lease_transitions.unwrap_or(0);
    if holder == me {
        return Decision::Renew(fresh(transitions, lease.acquire_time.clone()));
    }
    // The holder's own lease duration counts (it may run with other flags than ours).
    let theirs = lease
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(lease_duration, Duration::from_secs);
    if !holder.is_empty() && unchanged_for < theirs {
        return Decision::HeldBy(holder.to_string());
    }
    Decision::Take(fresh(transitions.saturating_add(1), None))
}

/// The Lease a leader leaves behind when it stops: no holder and a 1 s duration, so a standby
/// takes it at once instead of waiting out the lease.
pub(crate) fn released(lease: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: lease.lease_transitions,
        ..LeaseSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn now() -> Timestamp {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    fn held_by(who: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime("2026-12-01T09:00:00Z".parse().unwrap())),
            renew_time: Some(MicroTime("2026-12-01T09:59:58Z".parse().unwrap())),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_lease_is_created_held_by_us() {
        let Decision::Create(spec) = decide(None, Duration::ZERO, "a", LEASE, now()) else {
            panic!("expected a create");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.renew_time, Some(MicroTime(now())));
    }

    #[test]
    fn a_live_lease_of_another_holder_is_left_alone_until_it_stops_changing_for_a_lease_duration() {
        let lease = held_by("b", 3);
        assert_eq!(
            decide(Some(&lease), Duration::from_secs(14), "a", LEASE, now()),
            Decision::HeldBy("b".into())
        );
        let Decision::Take(spec) = decide(Some(&lease), LEASE, "a", LEASE, now()) else {
            panic!("an expired lease is taken");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(
            spec.lease_transitions,
            Some(4),
            "a new term counts as a transition"
        );
        assert_eq!(spec.acquire_time, Some(MicroTime(now())));
    }

    #[test]
    fn the_holders_own_lease_duration_decides_when_it_expires() {
        let mut lease = held_by("b", 0);
        lease.lease_duration_seconds = Some(60);
        assert_eq!(
            decide(Some(&lease), Duration::from_secs(30), "a", LEASE, now()),
            Decision::HeldBy("b".into())
        );
    }

    #[test]
    fn renewing_keeps_the_term_and_moves_the_renew_time() {
        let lease = held_by("a", 2);
        let Decision::Renew(spec) = decide(Some(&lease), Duration::from_secs(100), "a", LEASE, now()) else {
            panic!("expected a renew");
        };
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(spec.acquire_time, lease.acquire_time);
        assert_eq!(spec.renew_time, Some(MicroTime(now())));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let lease = released(&held_by("b", 5), now());
        let Decision::Take(spec) = decide(Some(&lease), Duration::ZERO, "a", LEASE, now()) else {
            panic!("a lease without a holder is free");
        };
        assert_eq!(spec.lease_transitions, Some(6));
    }
}
