//! A small stub resolver, so the servant need not link glibc's getaddrinfo.

pub mod dns;
