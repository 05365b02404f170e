//! Listeners, a uthread per connection, shutdown.
