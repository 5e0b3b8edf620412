//! systemd notifications (`sd_notify`): READY=1 with MAINPID and STATUS
//! once listeners are bound and `process_min_avail` processes are up,
//! RELOADING=1 with MONOTONIC_USEC then READY=1 around every reload (also a
//! failed one: systemd 253+ with Type=notify-reload waits for it, 252
//! ignores RELOADING), STOPPING=1. Without NOTIFY_SOCKET these do nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    // A lost notification is not worth failing over; systemd will time out
    // and say so itself.
    let _ = sd_notify::notify(false, states);
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::MainPid(std::process::id()), NotifyState::Status(status)]);
}

pub fn reloading() {
    let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000 + i128::from(t.tv_nsec()) / 1000)
        .unwrap_or(0);
    send(&[
        NotifyState::Reloading,
        NotifyState::MonotonicUsec(usec),
        NotifyState::Status("reloading configuration"),
    ]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}
