mod sim; // the simulated robot behind a pty, driven through serialport
