//! End-to-end tests: the sandbox served over loopback HTTP, driven by the
//! real teloxide client (and by raw HTTP where teloxide hides the answer).
//! One test binary keeps link time down.

mod bot_api;
mod common;
mod faults;
mod inspect;
mod limits;
mod updates;
mod validation;
