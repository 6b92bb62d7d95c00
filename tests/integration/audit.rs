//! The audit trail: "verify" finds the first event that someone holding the database file edited,
//! deleted, inserted or cut off; the audit page filters, pages and escapes what it shows.

use crate::common;

use common::*;
use medvault::access::Level;
use rocket::http::Status;

/// What an editor of the database runs first to get past the append-only triggers, in the
/// run's SQL (`{DROP_TRIGGERS}` in a format string).
const DROP_TRIGGERS: DropTriggers = DropTriggers;

struct DropTriggers;

impl std::fmt::Display for DropTriggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if on_postgres() {
            "DROP TRIGGER audit_events_no_update ON audit_events; \
             DROP TRIGGER audit_events_no_delete ON audit_events; \
             DROP TRIGGER audit_events_no_truncate ON audit_events;"
        } else {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;"
        })
    }
}

/// The newest event's id.
fn last_id(app: &TestApp) -> i64 {
    use diesel::dsl::max;
    use diesel::prelude::*;
    use medvault::db::schema::audit_events;
    let mut conn = app.app().db.conn().expect("conn");
    audit_events::table
        .select(max(audit_events::id))
        .first::<Option<i64>>(&mut *conn)
        .expect("max id")
        .unwrap_or(0)
}

/// An admin, signed in, after some activity: sign-ins that failed, a user created, a sign-out.
fn busy_app() -> TestApp {
    let app = TestApp::new();
    app.create_user(Level::Admin, "admin");
    let mut guest = app.browser();
    guest
        .login("admin", "not the password, not at all")
        .assert_status(Status::Unauthorized);
    guest
        .login("nobody", "not the password, not at all")
        .assert_status(Status::Unauthorized);
    app.create_user(Level::Doctor, "drgrey");
    let mut doctor = app.browser();
    doctor
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    doctor.post("/logout", &[]).assert_redirect("/login");
    app
}

fn admin(app: &TestApp) -> Browser<'_> {
    let mut admin = app.browser();
    admin.login("admin", PASSWORD).assert_redirect("/dashboard");
    admin
}

/// Presses "Verify the chain" on the audit page.
fn verify(admin: &mut Browser<'_>) -> Page {
    admin.get("/admin/audit").assert_status(Status::Ok);
    let page = admin.post("/admin/audit/verify", &[]);
    page.assert_status(Status::Ok);
    page
}

#[track_caller]
fn assert_broken_at(page: &Page, id: i64, reason: &str) {
    let expected = format!("The chain is broken at event #{id}: ");
    assert!(
        page.body.contains(&expected),
        "expected {expected:?}: {}",
        page.body
    );
    assert!(
        page.body.contains(reason),
        "expected {reason:?}: {}",
        page.body
    );
    assert!(!page.body.contains("events are intact"));
}

// ---------------------------------------------------------------------------------------------
// Verify

#[test]
fn an_untouched_trail_verifies_as_intact_and_the_check_is_recorded() {
    let app = busy_app();
    let mut admin = admin(&app);
    let events = last_id(&app);
    assert!(events >= 7, "{events} events");
    let page = verify(&mut admin);
    assert!(
        page.body
            .contains(&format!("All {events} events are intact.")),
        "{}",
        page.body
    );
    assert_eq!(
        app.audit_actions().last().map(String::as_str),
        Some("admin.audit_verified")
    );
    // And again, now that the check itself is in the chain.
    let again = verify(&mut admin);
    assert!(again
        .body
        .contains(&format!("All {} events are intact.", events + 1)));
}

#[test]
fn the_database_refuses_to_edit_or_delete_audit_rows_while_its_triggers_stand() {
    use diesel::connection::SimpleConnection;
    let app = busy_app();
    let mut conn = database_conn(app.home.path());
    let update = conn.batch_execute("UPDATE audit_events SET detail = 'x' WHERE id = 2");
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = conn.batch_execute("DELETE FROM audit_events WHERE id = 2");
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn verify_names_an_event_whose_detail_was_edited() {
    let app = busy_app();
    let mut admin = admin(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} UPDATE audit_events SET detail = 'level patient' WHERE id = 3;"
    ));
    let page = verify(&mut admin);
    assert_broken_at(&page, 3, "this event was edited after it was written");
    assert!(page.body.contains("2 events before it are intact."));
    assert!(app
        .audit_actions()
        .last()
        .is_some_and(|a| a == "admin.audit_verified"));
}

#[test]
fn verify_names_an_event_whose_actor_was_edited() {
    let app = busy_app();
    let mut admin = admin(&app);
    let last = last_id(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} UPDATE audit_events SET actor_name = 'someone.else' WHERE id = {last};"
    ));
    assert_broken_at(&verify(&mut admin), last, "edited after it was written");
}

#[test]
fn verify_names_an_event_whose_time_or_outcome_was_edited() {
    let app = busy_app();
    let mut admin = admin(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} UPDATE audit_events SET outcome = 'success' WHERE id = 5;"
    ));
    app.raw_sql("UPDATE audit_events SET at = at - 3600 WHERE id = 4;");
    assert_broken_at(&verify(&mut admin), 4, "edited after it was written");
}

#[test]
fn verify_names_a_deleted_event_in_the_middle() {
    let app = busy_app();
    let mut admin = admin(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} DELETE FROM audit_events WHERE id = 4;"
    ));
    let page = verify(&mut admin);
    assert_broken_at(&page, 4, "this event is missing: it was deleted");
    assert!(page.body.contains("3 events before it are intact."));
}

#[test]
fn verify_names_an_event_deleted_and_renumbered_to_hide_the_gap() {
    let app = busy_app();
    let mut admin = admin(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} DELETE FROM audit_events WHERE id = 4;
         UPDATE audit_events SET id = id + 1000 WHERE id > 4;
         UPDATE audit_events SET id = id - 1001 WHERE id > 1000;"
    ));
    assert_broken_at(&verify(&mut admin), 4, "does not follow the one before it");
}

#[test]
fn verify_names_an_inserted_event() {
    let app = busy_app();
    let mut admin = admin(&app);
    // Shift events 3.. up by one and slip a forged event in at 3, chained to event 2's mac.
    app.raw_sql(&format!(
        "{DROP_TRIGGERS}
         UPDATE audit_events SET id = id + 1000 WHERE id >= 3;
         UPDATE audit_events SET id = id - 999 WHERE id >= 1000;
         INSERT INTO audit_events (id, at, actor_id, actor_name, ip, action, target, outcome, detail, prev_mac, mac)
           SELECT 3, at, actor_id, actor_name, ip, 'login.success', target, 'success', '', mac, mac
           FROM audit_events WHERE id = 2;"
    ));
    assert_broken_at(&verify(&mut admin), 3, "edited after it was written");
}

#[test]
fn verify_names_an_event_appended_behind_the_servers_back() {
    let app = busy_app();
    let mut admin = admin(&app);
    let last = last_id(&app);
    app.raw_sql(&format!(
        "INSERT INTO audit_events (id, at, actor_id, actor_name, ip, action, target, outcome, detail, prev_mac, mac)
           SELECT id + 1, at + 1, '', 'admin', '127.0.0.1', 'logout', '', 'success', '', mac, mac
           FROM audit_events WHERE id = {last};"
    ));
    assert_broken_at(&verify(&mut admin), last + 1, "edited after it was written");
}

#[test]
fn verify_names_the_first_of_the_events_cut_off_the_end() {
    let app = busy_app();
    let mut admin = admin(&app);
    let last = last_id(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} DELETE FROM audit_events WHERE id >= {};",
        last - 1
    ));
    let page = verify(&mut admin);
    assert_broken_at(&page, last - 1, "deleted");
}

#[test]
fn events_cut_off_the_end_stay_detected_after_new_events_are_written() {
    let app = busy_app();
    let last = last_id(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} DELETE FROM audit_events WHERE id >= {};",
        last - 2
    ));
    // Life goes on before anyone checks: a sign-in, a failure, a verify.
    let mut admin = admin(&app);
    app.browser()
        .login("drgrey", "wrong password for sure")
        .assert_status(Status::Unauthorized);
    assert_broken_at(&verify(&mut admin), last - 2, "deleted");
    // The verify event chained after the cut does not heal it either.
    assert_broken_at(&verify(&mut admin), last - 2, "deleted");
}

#[test]
fn a_tail_cut_off_with_the_recorded_end_moved_back_to_match_is_detected() {
    let app = busy_app();
    let mut admin = admin(&app);
    let last = last_id(&app);
    // The attacker deletes the newest events and rewrites the recorded end to the new last
    // event's id and HMAC, both of which the file shows.
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} DELETE FROM audit_events WHERE id >= {cut};
         UPDATE settings SET value = (SELECT id || ':' || mac FROM audit_events WHERE id = {kept})
           WHERE name = 'audit.head';",
        cut = last - 1,
        kept = last - 2,
    ));
    assert_broken_at(&verify(&mut admin), last - 1, "recorded end was edited");
}

#[test]
fn a_tail_cut_off_with_the_recorded_end_deleted_is_detected() {
    let app = busy_app();
    let mut admin = admin(&app);
    let last = last_id(&app);
    app.raw_sql(&format!(
        "{DROP_TRIGGERS} DELETE FROM audit_events WHERE id >= {cut};
         DELETE FROM settings WHERE name = 'audit.head';",
        cut = last - 1,
    ));
    // Events written after the cut chain on, but cannot make the recorded end whole again.
    app.browser()
        .login("drgrey", "wrong password for sure")
        .assert_status(Status::Unauthorized);
    for _ in 0..2 {
        let page = verify(&mut admin);
        assert!(
            page.body.contains("The chain is broken at event #"),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("recorded end was edited"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("events are intact"));
    }
}

// ---------------------------------------------------------------------------------------------
// The audit page

/// The "N events" line of the audit page.
fn total(page: &Page) -> i64 {
    let text = page
        .body
        .split("<p class=\"muted\">")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("event count");
    text.parse().expect("a number")
}

/// How many event rows the page shows.
fn event_rows(page: &Page) -> usize {
    page.body.matches("<span class=\"badge badge-").count()
}

#[test]
fn the_audit_page_filters_by_actor_action_and_dates() {
    let app = TestApp::new();
    // Day one (2027-01-15): two failed sign-ins by drgrey's name, one success.
    app.create_user(Level::Admin, "admin");
    app.create_user(Level::Doctor, "drgrey");
    for _ in 0..2 {
        app.browser()
            .login("drgrey", "wrong password for sure")
            .assert_status(Status::Unauthorized);
    }
    app.browser()
        .login("drgrey", PASSWORD)
        .assert_redirect("/dashboard");
    // Day three (2027-01-17): the admin signs in, and drgrey fails once more.
    app.clock.advance(2 * 86_400);
    let mut admin = app.browser();
    admin.login("admin", PASSWORD).assert_redirect("/dashboard");
    app.browser()
        .login("drgrey", "wrong password for sure")
        .assert_status(Status::Unauthorized);

    let all = admin.get("/admin/audit");
    all.assert_status(Status::Ok);
    assert_eq!(total(&all), last_id(&app));

    let by_actor = admin.get("/admin/audit?actor=DrGrey");
    assert_eq!(total(&by_actor), 4, "{}", by_actor.body);
    assert_eq!(event_rows(&by_actor), 4);
    assert!(by_actor.body.contains("value=\"drgrey\""));

    let by_action = admin.get("/admin/audit?action=login.failure");
    assert_eq!(total(&by_action), 3);
    assert!(by_action
        .body
        .contains("<option value=\"login.failure\" selected>"));

    let both = admin.get("/admin/audit?actor=drgrey&action=login.success");
    assert_eq!(total(&both), 1);

    let first_day = admin.get("/admin/audit?action=login.failure&until=2027-01-15");
    assert_eq!(total(&first_day), 2, "{}", first_day.body);
    let later = admin.get("/admin/audit?action=login.failure&from=2027-01-16");
    assert_eq!(total(&later), 1);
    let window = admin.get("/admin/audit?from=2027-01-16&until=2027-01-16");
    assert_eq!(total(&window), 0);
    assert!(window.body.contains("No event matches."));
    let one_day = admin.get("/admin/audit?from=2027-01-17&until=2027-01-17&actor=admin");
    assert_eq!(total(&one_day), 1, "{}", one_day.body);
}

#[test]
fn an_invalid_date_is_refused_with_a_clear_message() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    let page = admin.get("/admin/audit?from=2026-13-45");
    page.assert_status(Status::UnprocessableEntity);
    assert!(
        page.body
            .contains("The from date must look like 2026-01-31."),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"2026-13-45\""));
    let page = admin.get("/admin/audit?until=yesterday");
    page.assert_status(Status::UnprocessableEntity);
    assert!(page
        .body
        .contains("The until date must look like 2026-01-31."));
    for word in ["panicked", "backtrace", "diesel", "sqlite"] {
        assert!(!page.body.contains(word));
    }
}

#[test]
fn the_audit_page_pages_newest_first() {
    let app = TestApp::new();
    let mut admin = app.signed_in(Level::Admin, "admin");
    // Sixty refused form posts: cheap events.
    let mut attacker = Browser::new(&app, "203.0.113.9:666", "curl/8.0");
    for _ in 0..60 {
        attacker
            .post_form(
                "/login",
                &[("username", "x"), ("password", "y")],
                Some(ORIGIN),
            )
            .assert_status(Status::Forbidden);
    }
    let last = last_id(&app);
    assert!(last > 60);

    let first = admin.get("/admin/audit");
    assert_eq!(event_rows(&first), 50);
    assert!(first.body.contains("Page 1 of 2"));
    assert!(first.body.contains(&format!("<td>{last}</td>")));
    assert!(!first.body.contains("<td>1</td>"));
    let second = admin.get("/admin/audit?page=2");
    assert_eq!(event_rows(&second), (last - 50) as usize);
    assert!(second.body.contains("Page 2 of 2"));
    assert!(second.body.contains("<td>1</td>"));
    assert!(!second.body.contains(&format!("<td>{last}</td>")));

    // The pager keeps the filters.
    let filtered = admin.get("/admin/audit?action=csrf.refused&page=2");
    assert_eq!(event_rows(&filtered), 10);
    assert!(filtered.body.contains("action=csrf.refused"));
}

#[test]
fn markup_in_a_failed_username_is_escaped_on_the_audit_page() {
    let app = TestApp::new();
    let script = "<script>alert(1)</script>";
    // Such a username can never be created...
    let actor = medvault::audit::Actor::default();
    let created = medvault::users::create_user(app.app(), Level::Doctor, script, PASSWORD, &actor);
    assert!(created.is_err());
    // ...but a failed sign-in with it is recorded as typed.
    let mut attacker = app.browser();
    let page = attacker.login(script, "whatever it is, it is wrong");
    page.assert_status(Status::Unauthorized);
    assert!(
        !page.body.contains(script),
        "the sign-in form re-fills it escaped"
    );

    let mut admin = app.signed_in(Level::Admin, "admin");
    for path in [
        "/admin/audit".to_string(),
        format!("/admin/audit?actor={}", encode(script)),
        "/dashboard".to_string(),
    ] {
        let page = admin.get(&path);
        page.assert_status(Status::Ok);
        assert!(
            !page.body.contains(script),
            "{path}: raw markup in {}",
            page.body
        );
        assert!(
            page.body.contains("&lt;script&gt;"),
            "{path}: {}",
            page.body
        );
    }
    let filtered = admin.get(&format!("/admin/audit?actor={}", encode(script)));
    assert_eq!(total(&filtered), 1);
}

/// Events written at one moment from many threads, each with no transaction of its own (as
/// record views write them): they are written in groups, and still each event is committed
/// before its caller goes on, each gets an id of its own, and the chain holds without a fork.
#[test]
fn events_appended_at_once_from_many_threads_are_each_committed_once_in_one_chain() {
    use diesel::prelude::*;
    use medvault::audit::{Actor, Entry, Outcome};
    use medvault::db::schema::audit_events;
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let app = busy_app();
    let before = last_id(&app);
    let start = std::sync::Barrier::new(THREADS);
    let services = app.app();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let start = &start;
            scope.spawn(move || {
                let mut conn = services.db.conn().expect("conn");
                let actor = Actor {
                    id: format!("thread{t}"),
                    name: format!("thread {t}"),
                    ip: "127.0.0.1".into(),
                };
                start.wait();
                for n in 0..EACH {
                    let detail = format!("thread {t} event {n}");
                    let entry =
                        Entry::new(&actor, "test.grouped", Outcome::Success).detail(detail.clone());
                    services
                        .audit
                        .append(&mut conn, services.now(), &entry)
                        .expect("appended");
                    // Committed by the time append returns, whichever thread wrote it: this
                    // thread's connection, outside any transaction, sees the latest commit.
                    let found: i64 = audit_events::table
                        .filter(audit_events::detail.eq(&detail))
                        .count()
                        .get_result(&mut *conn)
                        .expect("count");
                    assert_eq!(found, 1, "{detail} is in the trail once");
                }
            });
        }
    });
    let written = (THREADS * EACH) as i64;
    assert_eq!(last_id(&app), before + written, "one id per event");
    let mut conn = app.app().db.conn().expect("conn");
    let grouped: i64 = audit_events::table
        .filter(audit_events::action.eq("test.grouped"))
        .count()
        .get_result(&mut *conn)
        .expect("count");
    assert_eq!(grouped, written);
    let chain = app.app().audit.verify(&mut conn).expect("verify");
    assert!(chain.first_broken.is_none(), "{:?}", chain.first_broken);
    assert_eq!(chain.checked, before + written);
}

/// An event the database refuses to store is an error for its caller, not a page that goes on
/// as if the view had been recorded.
#[test]
fn an_event_the_database_refuses_is_an_error_for_its_caller() {
    use diesel::connection::SimpleConnection;
    use medvault::audit::{Actor, Entry, Outcome};
    let app = busy_app();
    let mut editor = database_conn(app.home.path());
    editor
        .batch_execute(if on_postgres() {
            "CREATE FUNCTION refuse_event() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_event();"
        } else {
            "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        })
        .expect("trigger");
    let before = last_id(&app);
    let services = app.app();
    let mut conn = services.db.conn().expect("conn");
    let entry = Entry::new(&Actor::default(), "test.refused", Outcome::Success);
    let refused = services.audit.append(&mut conn, services.now(), &entry);
    assert!(refused.is_err(), "the refusal reaches the caller");
    assert_eq!(last_id(&app), before, "nothing was written");
    editor
        .batch_execute("DROP TRIGGER refuse_events ON audit_events")
        .or_else(|_| editor.batch_execute("DROP TRIGGER refuse_events"))
        .expect("drop");
    services
        .audit
        .append(&mut conn, services.now(), &entry)
        .expect("the next event is written");
    assert_eq!(last_id(&app), before + 1);
}
