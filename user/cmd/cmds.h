/* One entry point per subcommand; each lives in user/cmd/<name>.c. */
#ifndef HATRACE_CMDS_H
#define HATRACE_CMDS_H

struct subcommand {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
};

int cmd_doctor(int argc, char **argv);
int cmd_hist(int argc, char **argv);
int cmd_footprint(int argc, char **argv);
int cmd_vms(int argc, char **argv);
int cmd_inflate(int argc, char **argv);
int cmd_reproduce(int argc, char **argv);

#endif
