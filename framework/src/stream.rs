//! One node input: a FIFO of packets and the next-timestamp bound of the stream it reads.

use std::collections::VecDeque;

use crate::packet::Packet;
use crate::timestamp::Timestamp;

/// An input stream's queue and bound, as seen by its consuming node.
#[derive(Debug)]
pub(crate) struct InputQueue {
    queue: VecDeque<Packet>,
    /// The smallest timestamp a future packet may carry (`Done` once closed).
    bound: Timestamp,
    /// The stream header, if the producer set one in `open`.
    pub(crate) header: Packet,
    /// The queue length at which upstream sources are throttled (`usize::MAX` = never).
    pub(crate) limit: usize,
    /// True while `len() >= limit` has been reported to the throttling bookkeeping.
    pub(crate) full: bool,
    /// The longest the queue has been.
    pub(crate) high_water: usize,
}

impl InputQueue {
    pub(crate) fn new(limit: usize) -> InputQueue {
        InputQueue {
            queue: VecDeque::new(),
            bound: Timestamp::PRE_STREAM,
            header: Packet::empty(),
            limit,
            full: false,
            high_water: 0,
        }
    }

    /// Queues a packet. The caller has already checked the timestamp against the bound.
    /// Packets arriving after the stream is done are ignored (returns false).
    pub(crate) fn push(&mut self, packet: Packet) -> bool {
        if self.bound == Timestamp::DONE {
            return false;
        }
        self.bound = packet.timestamp().next_allowed_in_stream();
        self.queue.push_back(packet);
        self.high_water = self.high_water.max(self.queue.len());
        true
    }

    /// Checks that a packet at `ts` may be added.
    pub(crate) fn check_timestamp(&self, ts: Timestamp) -> Result<(), String> {
        if self.bound == Timestamp::DONE {
            return Ok(());
        }
        if ts < self.bound {
            return Err(format!(
                "packet timestamp mismatch: the minimum expected timestamp is {} but received {}",
                self.bound, ts
            ));
        }
        Ok(())
    }

    /// Raises the bound to `bound` (a lower or equal bound is ignored).
    pub(crate) fn raise_bound(&mut self, bound: Timestamp) {
        if bound > self.bound {
            self.bound = bound;
        }
    }

    /// Closes the stream: its bound becomes `Done`.
    pub(crate) fn close(&mut self) {
        self.bound = Timestamp::DONE;
    }

    pub(crate) fn bound(&self) -> Timestamp {
        self.bound
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn head_timestamp(&self) -> Option<Timestamp> {
        self.queue.front().map(|p| p.timestamp())
    }

    /// The head's timestamp if a packet is queued, else the bound.
    pub(crate) fn min_timestamp_or_bound(&self) -> Timestamp {
        self.head_timestamp().unwrap_or(self.bound)
    }

    /// The empty packet a `process` call sees for this stream when it has nothing at the
    /// input timestamp: stamped with the highest timestamp known to be settled.
    pub(crate) fn settled_empty(&self) -> Packet {
        Packet::empty_at(self.min_timestamp_or_bound().previous_allowed_in_stream())
    }

    /// Removes and returns the head packet (the caller checked there is one).
    pub(crate) fn pop_front(&mut self) -> Packet {
        self.queue.pop_front().unwrap_or_default()
    }

    /// Removes every packet at or below `ts` and returns the one exactly at `ts` (or the
    /// settled empty packet); the bound is raised past `ts`. Returns the number of packets
    /// removed below `ts` as well (dropped).
    pub(crate) fn take_at(&mut self, ts: Timestamp) -> (Packet, usize) {
        let dropped = self.drop_below(ts);
        let packet = match self.queue.front() {
            Some(head) if head.timestamp() == ts => self.queue.pop_front().expect("non-empty"),
            _ => self.settled_empty(),
        };
        if self.bound <= ts && ts.is_allowed_in_stream() {
            self.raise_bound(ts.next_allowed_in_stream());
        }
        (packet, dropped)
    }

    /// Drops every packet below `ts` (same timestamps on all streams of a fixed-size set).
    pub(crate) fn drop_below(&mut self, ts: Timestamp) -> usize {
        self.drop_front_while(|t| t < ts)
    }

    /// Drops every packet at or below `ts` (returns how many).
    pub(crate) fn drop_through(&mut self, ts: Timestamp) -> usize {
        self.drop_front_while(|t| t <= ts)
    }

    /// Drops packets from the front while `drop` says so of their timestamps; returns how many.
    fn drop_front_while(&mut self, drop: impl Fn(Timestamp) -> bool) -> usize {
        let mut dropped = 0;
        while self.queue.front().is_some_and(|p| drop(p.timestamp())) {
            self.queue.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// The timestamps of the queued packets below `limit`.
    pub(crate) fn timestamps_below(
        &self,
        limit: Timestamp,
    ) -> impl Iterator<Item = Timestamp> + '_ {
        self.queue
            .iter()
            .map(|p| p.timestamp())
            .take_while(move |&t| t < limit)
    }

    /// The head packet, if any.
    pub(crate) fn head(&self) -> Option<&Packet> {
        self.queue.front()
    }

    /// True if a packet at or after `ts` is queued.
    pub(crate) fn has_packet_at_or_after(&self, ts: Timestamp) -> bool {
        self.queue.back().is_some_and(|p| p.timestamp() >= ts)
    }

    /// No packet is queued and none will come.
    pub(crate) fn is_done(&self) -> bool {
        self.queue.is_empty() && self.bound >= Timestamp::ONE_OVER_POST_STREAM
    }

    /// The timestamp of the `i`-th queued packet.
    pub(crate) fn timestamp_at(&self, i: usize) -> Option<Timestamp> {
        self.queue.get(i).map(|p| p.timestamp())
    }

    /// Empties the queue (end of run).
    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: i64) -> Packet {
        Packet::new(ts).at(Timestamp::new(ts))
    }

    #[test]
    fn bound_follows_packets_and_rejects_going_back() {
        let mut q = InputQueue::new(10);
        assert_eq!(q.bound(), Timestamp::PRE_STREAM);
        assert!(q.check_timestamp(Timestamp::new(5)).is_ok());
        q.push(p(5));
        assert_eq!(q.bound(), Timestamp::new(6));
        let err = q.check_timestamp(Timestamp::new(5)).unwrap_err();
        assert!(
            err.contains("minimum expected timestamp is 6 but received 5"),
            "{err}"
        );
        q.raise_bound(Timestamp::new(3));
        assert_eq!(q.bound(), Timestamp::new(6));
    }

    #[test]
    fn empty_inputs_carry_the_settled_timestamp() {
        let q = InputQueue::new(10);
        assert_eq!(q.settled_empty().timestamp(), Timestamp::UNSTARTED);
        let mut q = InputQueue::new(10);
        q.close();
        assert_eq!(q.settled_empty().timestamp(), Timestamp::MAX);
        let mut q = InputQueue::new(10);
        q.push(p(7));
        assert_eq!(q.settled_empty().timestamp(), Timestamp::new(6));
    }

    #[test]
    fn take_at_removes_up_to_the_timestamp() {
        let mut q = InputQueue::new(10);
        q.push(p(1));
        q.push(p(2));
        q.push(p(4));
        let (packet, dropped) = q.take_at(Timestamp::new(2));
        assert_eq!(packet.timestamp(), Timestamp::new(2));
        assert_eq!(dropped, 1);
        let (packet, _) = q.take_at(Timestamp::new(3));
        assert!(packet.is_empty());
        assert_eq!(packet.timestamp(), Timestamp::new(3));
        assert_eq!(q.len(), 1);
        q.close();
        q.take_at(Timestamp::new(4));
        assert_eq!((q.len(), q.bound()), (0, Timestamp::DONE));
        assert!(!q.push(p(9)), "packets after close are ignored");
    }
}
