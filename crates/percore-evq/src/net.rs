//! Sockets for uthreads (in progress).
