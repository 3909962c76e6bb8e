/* placeholder */ int rt_collectives_placeholder(void); int rt_collectives_placeholder(void) { return 0; }
