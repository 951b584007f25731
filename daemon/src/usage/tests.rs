//! The governor's decisions, on scripted account states.

use super::*;

const P: Policy<'static> = Policy {
    threshold: 0.8,
    weekly: 0.9,
    model: Some("claude-opus-5-5"),
    downgrade: None,
    workers: orchestrator_proto::Agent::Claude,
    codex_route: false,
};

#[test]
fn thresholds_rejections_and_resets() {
    let usage = Usage::new();
    let now = OffsetDateTime::now_utc();
    let reset = now + time::Duration::hours(2);
    usage.rate_limit_event(
        false,
        Some("five_hour"),
        Some(reset.unix_timestamp()),
        Some(0.82),
    );
    let h = hold(&usage.snapshot(), &P, now, RESET_MARGIN).expect("over the threshold");
    assert!(!h.rejected && h.reason.contains("82%"), "{h:?}");
    assert_eq!(
        h.until.map(|u| u.unix_timestamp()),
        Some((reset + RESET_MARGIN).unix_timestamp())
    );
    let lax = Policy {
        threshold: 0.9,
        ..P
    };
    assert_eq!(hold(&usage.snapshot(), &lax, now, RESET_MARGIN), None);
    // After the reset the old figure no longer holds anyone.
    let later = reset + time::Duration::seconds(1);
    assert_eq!(hold(&usage.snapshot(), &P, later, RESET_MARGIN), None);
    usage.rate_limit_event(true, Some("seven_day"), Some(reset.unix_timestamp()), None);
    let h = hold(&usage.snapshot(), &lax, now, RESET_MARGIN).expect("rejected");
    assert!(h.rejected && h.reason.contains("7-day"), "{h:?}");
}

/// The weekly windows have their own threshold; a family's window holds only the runs
/// whose workers run that family, and says so.
#[test]
fn weekly_windows_hold_by_their_own_threshold_and_family() {
    let usage = Usage::new();
    let now = OffsetDateTime::now_utc();
    let week = now + time::Duration::days(3);
    usage.rate_limit_event(
        false,
        Some("seven_day"),
        Some(week.unix_timestamp()),
        Some(0.85),
    );
    assert_eq!(
        hold(&usage.snapshot(), &P, now, RESET_MARGIN),
        None,
        "85% < weekly 90%"
    );
    usage.rate_limit_event(
        false,
        Some("seven_day_opus"),
        Some(week.unix_timestamp()),
        Some(0.95),
    );
    let h = hold(&usage.snapshot(), &P, now, RESET_MARGIN).expect("an opus run holds");
    assert!(
        h.reason
            .contains("7-day Opus window is at 95% (weekly threshold 90%"),
        "{h:?}"
    );
    assert_eq!(
        h.until.map(|u| u.unix_timestamp()),
        Some((week + RESET_MARGIN).unix_timestamp())
    );
    let sonnet = Policy {
        model: Some("sonnet"),
        ..P
    };
    assert_eq!(hold(&usage.snapshot(), &sonnet, now, RESET_MARGIN), None);
    let unknown = Policy { model: None, ..P };
    assert_eq!(hold(&usage.snapshot(), &unknown, now, RESET_MARGIN), None);
    // A hit Opus limit stops Opus runs only; the 5-hour one, every run.
    usage.rate_limit_event(
        true,
        Some("seven_day_opus"),
        Some(week.unix_timestamp()),
        None,
    );
    assert!(hold(&usage.snapshot(), &P, now, RESET_MARGIN).is_some_and(|h| h.rejected));
    assert_eq!(hold(&usage.snapshot(), &sonnet, now, RESET_MARGIN), None);
    assert_eq!(human("seven_day_sonnet"), "7-day Sonnet");
}

/// With `--on-limit downgrade`, a run whose workers' family is over its weekly threshold
/// does not wait while a cheaper allowed model has room: tasks move to the strongest such.
#[test]
fn downgrade_moves_to_the_strongest_cheaper_allowed_model_with_room() {
    let usage = Usage::new();
    let now = OffsetDateTime::now_utc();
    let week = (now + time::Duration::days(3)).unix_timestamp();
    usage.rate_limit_event(false, Some("seven_day_opus"), Some(week), Some(0.95));
    let down = Policy {
        downgrade: Some(vec!["opus", "haiku", "claude-sonnet-5-5"]),
        ..P
    };
    let a = usage.snapshot();
    let (to, why) = downgrade(&a, &down, "opus", now).expect("moved");
    assert_eq!(to, "claude-sonnet-5-5");
    assert!(why.contains("7-day Opus window is at 95%"), "{why}");
    assert_eq!(hold(&a, &down, now, RESET_MARGIN), None, "it does not wait");
    assert_eq!(downgrade(&a, &down, "sonnet", now), None, "sonnet has room");
    assert_eq!(
        downgrade(&a, &P, "opus", now),
        None,
        "only with --on-limit downgrade"
    );
    usage.rate_limit_event(false, Some("seven_day_sonnet"), Some(week), Some(0.99));
    let a = usage.snapshot();
    assert_eq!(
        downgrade(&a, &down, "opus", now).map(|d| d.0).as_deref(),
        Some("haiku")
    );
    let no_haiku = Policy {
        downgrade: Some(vec!["opus", "sonnet"]),
        ..P
    };
    assert_eq!(downgrade(&a, &no_haiku, "opus", now), None);
    assert!(
        hold(&a, &no_haiku, now, RESET_MARGIN).is_some(),
        "nowhere to go: wait"
    );
}

#[test]
fn a_limit_without_a_time_holds_until_a_poll_shows_room() {
    let usage = Usage::new();
    usage.limit_hit(None);
    let now = OffsetDateTime::now_utc();
    assert!(hold(&usage.snapshot(), &P, now, RESET_MARGIN).is_some_and(|h| h.until.is_none()));
    let later = now + time::Duration::seconds(1);
    let room = Window {
        utilization: 0.1,
        resets_at: None,
        source: Source::Endpoint,
        observed_at: later,
    };
    usage.polled([("five_hour".to_owned(), room)].into());
    assert_eq!(hold(&usage.snapshot(), &P, later, RESET_MARGIN), None);
}
