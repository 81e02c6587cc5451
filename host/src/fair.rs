//! A resource of a few units (CPU lanes, database connections for guests' reads) shared fairly
//! between tenants.
//!
//! Each attempt joins as a [`Member`] of its tenant and holds at most one unit at a time.
//! While several tenants have members, a tenant holds at most `units / active tenants` units
//! (at least one); a waiting member whose tenant holds its share is passed over for the next
//! one in line, and keeps its place. A tenant stays active for a moment after its last member
//! left, so that a tenant whose attempts are short and come one after another is not dropped
//! from the share between two of them. Alone, a tenant may hold every unit.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a tenant still counts as active after its last member left.
pub(crate) const ACTIVE_AFTER_LAST: Duration = Duration::from_millis(100);

/// Units shared fairly between tenants.
#[derive(Debug)]
pub(crate) struct FairShare {
    units: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Units no member holds.
    free: usize,
    members: HashMap<u64, MemberState>,
    /// Members waiting for a unit, in the order they asked.
    waiting: VecDeque<Waiter>,
    /// Tenants with members, or that had one a moment ago.
    tenants: HashMap<Arc<str>, Share>,
    next_id: u64,
}

#[derive(Debug)]
struct MemberState {
    tenant: Arc<str>,
    /// Whether the member holds a unit.
    holds: bool,
    /// When the member last asked for a unit or got one.
    seen: Option<Instant>,
}

#[derive(Debug)]
struct Waiter {
    member: u64,
    tenant: Arc<str>,
    granted: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct Share {
    members: usize,
    held: usize,
    last_left: Option<Instant>,
}

/// One attempt's place in a [`FairShare`]; gives back its unit when dropped.
#[derive(Debug)]
pub(crate) struct Member {
    share: Arc<FairShare>,
    id: u64,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FairShare {
    /// Returns `units` units (at least one).
    pub(crate) fn new(units: usize) -> Arc<FairShare> {
        let units = units.max(1);
        Arc::new(FairShare {
            units,
            state: Mutex::new(State {
                free: units,
                ..State::default()
            }),
        })
    }

    /// Returns a member of `tenant`, holding no unit yet.
    pub(crate) fn join(self: &Arc<Self>, tenant: &str) -> Member {
        let mut state = locked(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        let tenant: Arc<str> = match state.tenants.get_key_value(tenant) {
            Some((name, _)) => name.clone(),
            None => tenant.into(),
        };
        state.tenants.entry(tenant.clone()).or_default().members += 1;
        state.members.insert(
            id,
            MemberState {
                tenant,
                holds: false,
                seen: None,
            },
        );
        Member {
            share: self.clone(),
            id,
        }
    }

    /// Gives back `member`'s unit, if it holds one, and returns the wait for the next: done
    /// once the member holds a unit (or has left).
    pub(crate) fn acquire(&self, member: &Member) -> impl Future<Output = ()> + Send + use<> {
        let (granted, wait) = oneshot::channel();
        let mut state = locked(&self.state);
        let now = Instant::now();
        if let Some(m) = state.members.get_mut(&member.id) {
            m.seen = Some(now);
            let tenant = m.tenant.clone();
            state.give_back(member.id);
            state.waiting.push_back(Waiter {
                member: member.id,
                tenant,
                granted,
            });
            state.dispatch(self.units, now);
        }
        async move {
            // An error means the member is gone, or was never here.
            let _ = wait.await;
        }
    }

    /// Gives back `member`'s unit, if it holds one.
    pub(crate) fn release(&self, member: &Member) {
        let mut state = locked(&self.state);
        state.give_back(member.id);
        state.dispatch(self.units, Instant::now());
    }

    /// Takes the units back from members that have held one without asking again for longer
    /// than `idle`, and forgets tenants gone for a while.
    pub(crate) fn release_idle(&self, idle: Duration) {
        let mut state = locked(&self.state);
        let now = Instant::now();
        let idle: Vec<u64> = state
            .members
            .iter()
            .filter(|(_, m)| m.holds && m.seen.is_some_and(|seen| now - seen > idle))
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            state.give_back(id);
        }
        state.tenants.retain(|_, share| share.is_active(now));
        state.dispatch(self.units, now);
    }

    /// Returns how many units are free now.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        locked(&self.state).free
    }

    /// Returns whether `member` holds a unit now.
    #[cfg(test)]
    pub(crate) fn holds(&self, member: &Member) -> bool {
        locked(&self.state)
            .members
            .get(&member.id)
            .is_some_and(|m| m.holds)
    }

    /// Returns how many members there are.
    #[cfg(test)]
    pub(crate) fn members(&self) -> usize {
        locked(&self.state).members.len()
    }
}

impl Share {
    fn is_active(&self, now: Instant) -> bool {
        self.members > 0
            || self
                .last_left
                .is_some_and(|at| now - at < ACTIVE_AFTER_LAST)
    }
}

impl State {
    /// Gives back member `id`'s unit, if it holds one.
    fn give_back(&mut self, id: u64) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        if !std::mem::take(&mut member.holds) {
            return;
        }
        self.free += 1;
        if let Some(share) = self.tenants.get_mut(&member.tenant) {
            share.held -= 1;
        }
    }

    /// Grants free units to waiting members in order, passing over those whose tenant holds
    /// its share already.
    fn dispatch(&mut self, units: usize, now: Instant) {
        if self.free == 0 || self.waiting.is_empty() {
            return;
        }
        let active = self.tenants.values().filter(|s| s.is_active(now)).count();
        let share = (units / active.max(1)).max(1);
        let mut i = 0;
        while self.free > 0 && i < self.waiting.len() {
            let waiter = &self.waiting[i];
            if waiter.granted.is_closed() || !self.members.contains_key(&waiter.member) {
                self.waiting.remove(i);
                continue;
            }
            if self.tenants.get(&waiter.tenant).map_or(0, |s| s.held) >= share {
                i += 1;
                continue;
            }
            let waiter = self.waiting.remove(i).expect("index is in bounds");
            if waiter.granted.send(()).is_err() {
                continue;
            }
            self.free -= 1;
            if let Some(share) = self.tenants.get_mut(&waiter.tenant) {
                share.held += 1;
            }
            if let Some(member) = self.members.get_mut(&waiter.member) {
                member.holds = true;
                member.seen = Some(now);
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let mut state = locked(&self.share.state);
        let now = Instant::now();
        state.give_back(self.id);
        if let Some(member) = state.members.remove(&self.id)
            && let Some(share) = state.tenants.get_mut(&member.tenant)
        {
            share.members -= 1;
            share.last_left = Some(now);
        }
        state.waiting.retain(|w| w.member != self.id);
        // Tenants gone for a while are forgotten here too, not only by `release_idle` (which
        // the read pool never calls), so that the map holds only recent tenants.
        state.tenants.retain(|_, share| share.is_active(now));
        state.dispatch(self.share.units, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_unit_is_held_until_given_back_or_taken_back_when_idle() {
        let share = FairShare::new(1);
        let (a, b) = (share.join("t"), share.join("t"));
        share.acquire(&a).await;
        assert_eq!(share.free(), 0, "a holds the unit");
        let waiting = tokio::spawn(share.acquire(&b));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "b waits for the unit");
        // a has not asked again for a while: its unit is taken back and b gets it.
        std::thread::sleep(Duration::from_millis(5));
        share.release_idle(Duration::from_millis(2));
        waiting.await.unwrap();
        assert!(share.holds(&b), "b holds the unit now");
        assert!(!share.holds(&a), "a's unit was taken back");
        // A member that leaves gives back its unit.
        drop(b);
        assert_eq!(share.free(), 1);
        assert_eq!(share.members(), 1, "only a is still a member");
        share.acquire(&a).await;
        share.release(&a);
        assert_eq!(share.free(), 1, "released");
    }

    #[tokio::test]
    async fn a_tenant_holds_at_most_its_share_while_another_tenant_is_active() {
        let share = FairShare::new(2);
        let (a, b) = (share.join("busy"), share.join("busy"));
        // Alone, a tenant may take every unit.
        share.acquire(&a).await;
        share.acquire(&b).await;
        assert_eq!(share.free(), 0);
        // Another tenant joins: when a asks again it waits, since b holds the busy tenant's
        // share of one unit, and the other unit stays free for the newcomer.
        let other = share.join("other");
        let a_waits = tokio::spawn(share.acquire(&a));
        tokio::task::yield_now().await;
        assert!(!a_waits.is_finished(), "the busy tenant is at its share");
        assert_eq!(share.free(), 1, "one unit stays free for the other tenant");
        share.acquire(&other).await;
        assert_eq!(share.free(), 0, "the other tenant got its unit at once");
        // The other tenant's member leaves: its tenant still counts for a moment (short
        // attempts come and go), then its share goes back to the busy tenant.
        drop(other);
        tokio::task::yield_now().await;
        assert!(!a_waits.is_finished(), "the other tenant still counts");
        std::thread::sleep(ACTIVE_AFTER_LAST + Duration::from_millis(10));
        share.release_idle(Duration::from_secs(60));
        a_waits.await.unwrap();
        assert!(share.holds(&a) && share.holds(&b));
    }
}
