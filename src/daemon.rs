//! The daemon: wires the scheduler, fetch cycles, digests and the server; handles signals
//! (SIGTERM/SIGINT stop cleanly with a flush, SIGHUP reloads config) and systemd readiness.
