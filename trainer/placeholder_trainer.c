/* placeholder */ int rt_trainer_placeholder(void); int rt_trainer_placeholder(void) { return 0; }
