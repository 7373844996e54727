#include "run_prog.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Reads the child's stdout to EOF or the deadline, keeping the first len - 1 bytes. */
static int drain(int fd, uint64_t deadline_ns, char *out, size_t len)
{
	size_t kept = 0;
	char scratch[4096];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = now_ns();
		ssize_t n;
		int r;

		if (exiting)
			return -EINTR;
		if (now >= deadline_ns)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (deadline_ns - now) / 1000000 > 200 ? 200 :
				  (int)((deadline_ns - now) / 1000000) + 1);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (kept + 1 < len)
			n = read(fd, out + kept, len - 1 - kept);
		else
			n = read(fd, scratch, sizeof(scratch));
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n > 0 && kept + 1 < len) {
			kept += n;
			out[kept] = 0;
		}
	}
}

int run_capture(const char *const argv[], uint64_t timeout_ns, char *out, size_t len)
{
	uint64_t deadline = now_ns() + timeout_ns;
	posix_spawn_file_actions_t fa;
	int pipefd[2], status = 0, err;
	pid_t pid;

	if (len)
		out[0] = 0;
	if (pipe2(pipefd, O_CLOEXEC))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	err = -posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (err) {
		close(pipefd[0]);
		return err;
	}
	err = drain(pipefd[0], deadline, out, len);
	close(pipefd[0]);
	/* It may close its stdout and go on running. */
	while (!err && !waitpid(pid, &status, WNOHANG)) {
		if (exiting)
			err = -EINTR;
		else if (now_ns() >= deadline)
			err = -ETIMEDOUT;
		else
			usleep(10000);
	}
	if (err) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return err;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

pid_t run_background(const char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int err;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	err = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return err ? -err : pid;
}

int run_stop(pid_t pid, uint64_t timeout_ns)
{
	uint64_t deadline = now_ns() + timeout_ns;
	int status;
	pid_t r;

	kill(pid, SIGINT);
	while (!(r = waitpid(pid, &status, WNOHANG)) && now_ns() < deadline)
		usleep(10000);
	if (r == pid)
		return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -ETIMEDOUT;
}
