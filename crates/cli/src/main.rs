fn main() {
    println!("psformer");
}
