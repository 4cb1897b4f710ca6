pub fn test() {
    todo!()
}
