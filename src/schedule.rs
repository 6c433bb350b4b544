//! Scheduling: when each feed is due for a fetch and when each subscriber's digest is due.
//!
//! In: feed state, settings, a clock. Out: the next due times. Pure computations, with local
//! digest times computed in the subscriber's zone on every tick (never a fixed UTC offset).
