use std::time::Duration;
use quire_runtime::Node;
use quire_shards::{Agent, Context, Envelope};
struct Echo;
impl Agent for Echo {
    fn handle(&mut self, ctx: &mut Context<'_>, msg: Envelope) {
        let _ = ctx.reply(msg.payload);
    }
}
#[test]
fn smoke() {
    let node = Node::builder().start().unwrap();
    print!("{}", node.placement());
    let c = node.client();
    for i in 0..10 { c.register_blocking(format!("e{i}"), || Echo).unwrap(); }
    for i in 0..10 {
        let r = c.call_blocking(format!("e{i}"), "hi", Duration::from_secs(1)).unwrap();
        assert_eq!(&r.payload[..], b"hi");
    }
    println!("{}", node.shutdown());
}
