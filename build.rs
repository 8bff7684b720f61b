fn main() {
    // sqlx::migrate! reads migrations/ when payhook is compiled: a new migration file must
    // rebuild it.
    println!("cargo:rerun-if-changed=migrations");
}
