//! The scripted expert controllers (cart-pole energy pumping + LQR; pendulum).
