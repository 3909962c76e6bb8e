/* placeholder */ int rt_data_placeholder(void); int rt_data_placeholder(void) { return 0; }
