//! Links with `layout.ld` and Tock's generic kernel layout.
fn main() {
    tock_build_scripts::default_linker_script();
}
