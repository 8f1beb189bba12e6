// The serial link against a fake robot on a pty.
mod link;
