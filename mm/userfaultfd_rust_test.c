// SPDX-License-Identifier: GPL-2.0
/*
 * Test support for the Rust implementation of the userfaultfd fills
 * (CONFIG_USERFAULTFD_RUST_TEST):
 *
 * - debugfs userfaultfd/mfill_impl selects the implementation that
 *   mm/userfaultfd.c calls at run time (mfill_impl() in userfaultfd_rust.h):
 *   "rust-batch" (the default: the Rust UFFDIO_CONTINUE mapping as many
 *   pages as it can under one PTE table lock, as production kernels with
 *   CONFIG_USERFAULTFD_RUST run it), "rust" (the Rust implementation page
 *   by page) or "c";
 * - debugfs userfaultfd/stats shows what each one mapped (mfill_count()):
 *   pages, and for the batched CONTINUE also its steps and PMD mappings;
 * - with CONFIG_USERFAULTFD_RUST_KUNIT_TEST, userfaultfd contexts that the
 *   KUnit tests of the Rust code create and drive.
 *
 * None of this is built into a production kernel.
 */

#include <linux/debugfs.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include "userfaultfd_rust.h"

DEFINE_STATIC_KEY_TRUE(mfill_impl_rust);
DEFINE_STATIC_KEY_TRUE(mfill_impl_rust_batch);
DEFINE_PER_CPU(unsigned long [NR_MFILL_STATS], mfill_stats);

/* Writers of mfill_impl: both keys change together. */
static DEFINE_MUTEX(mfill_impl_lock);

static const char * const mfill_impl_names[] = {
	[MFILL_IMPL_C]		= "c",
	[MFILL_IMPL_RUST]	= "rust",
	[MFILL_IMPL_RUST_BATCH]	= "rust-batch",
};

static const char * const mfill_stat_names[NR_MFILL_STATS] = {
	[MFILL_CONTINUE_C]			= "continue_c",
	[MFILL_CONTINUE_RUST]			= "continue_rust",
	[MFILL_CONTINUE_RUST_BATCH]		= "continue_rust_batch",
	[MFILL_CONTINUE_RUST_BATCH_STEPS]	= "continue_rust_batch_steps",
	[MFILL_CONTINUE_RUST_BATCH_PMD]		= "continue_rust_batch_pmd",
	[MFILL_INSTALL_C]			= "install_c",
	[MFILL_INSTALL_RUST]			= "install_rust",
};

void mfill_count_rust_batch_pmd(void)
{
	mfill_count(MFILL_CONTINUE_RUST_BATCH_PMD, 1);
}

static int mfill_impl_show(struct seq_file *m, void *v)
{
	mutex_lock(&mfill_impl_lock);
	seq_printf(m, "%s\n", mfill_impl_names[mfill_impl()]);
	mutex_unlock(&mfill_impl_lock);
	return 0;
}

static int mfill_impl_open(struct inode *inode, struct file *file)
{
	return single_open(file, mfill_impl_show, NULL);
}

static ssize_t mfill_impl_write(struct file *file, const char __user *ubuf,
				size_t len, loff_t *ppos)
{
	char buf[16];
	int impl;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	impl = sysfs_match_string(mfill_impl_names, buf);
	if (impl < 0)
		return impl;
	mutex_lock(&mfill_impl_lock);
	if (impl == MFILL_IMPL_C)
		static_branch_disable(&mfill_impl_rust);
	else
		static_branch_enable(&mfill_impl_rust);
	if (impl == MFILL_IMPL_RUST_BATCH)
		static_branch_enable(&mfill_impl_rust_batch);
	else
		static_branch_disable(&mfill_impl_rust_batch);
	mutex_unlock(&mfill_impl_lock);
	return len;
}

static const struct file_operations mfill_impl_fops = {
	.owner		= THIS_MODULE,
	.open		= mfill_impl_open,
	.read		= seq_read,
	.write		= mfill_impl_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

static unsigned long mfill_stat_sum(enum mfill_stat_item item)
{
	unsigned long sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu(mfill_stats, cpu)[item];
	return sum;
}

static int mfill_stats_show(struct seq_file *m, void *v)
{
	int i;

	for (i = 0; i < NR_MFILL_STATS; i++)
		seq_printf(m, "%s %lu\n", mfill_stat_names[i], mfill_stat_sum(i));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mfill_stats);

static int __init mfill_rust_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("userfaultfd", NULL);

	debugfs_create_file("mfill_impl", 0644, dir, NULL, &mfill_impl_fops);
	debugfs_create_file("stats", 0444, dir, NULL, &mfill_stats_fops);
	return 0;
}
late_initcall(mfill_rust_debugfs_init);

#ifdef CONFIG_USERFAULTFD_RUST_KUNIT_TEST
/*
 * A userfaultfd context on current->mm, made as userfaultfd(2) makes it with
 * UFFD_USER_MODE_ONLY, but without a file descriptor: faults the kernel
 * takes on a registered range fail instead of waiting for a handler.
 */
struct file *uffd_kunit_open(void)
{
	return userfaultfd_file_create(UFFD_USER_MODE_ONLY);
}

/*
 * Issues @cmd through the file's ioctl, as the ioctl(2) of userspace does,
 * with @arg passed through a page of user memory of current->mm.
 */
static long uffd_kunit_ioctl(struct file *file, unsigned int cmd, void *arg,
			     size_t size)
{
	unsigned long uaddr;
	long ret;

	uaddr = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, 0);
	if (IS_ERR_VALUE(uaddr))
		return uaddr;
	ret = -EFAULT;
	if (!copy_to_user((void __user *)uaddr, arg, size)) {
		ret = file->f_op->unlocked_ioctl(file, cmd, uaddr);
		if (copy_from_user(arg, (void __user *)uaddr, size))
			ret = -EFAULT;
	}
	vm_munmap(uaddr, PAGE_SIZE);
	return ret;
}

long uffd_kunit_api(struct file *file, u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	return uffd_kunit_ioctl(file, UFFDIO_API, &api, sizeof(api));
}

long uffd_kunit_register(struct file *file, unsigned long start,
			 unsigned long len, vm_flags_t vm_flags)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
	};

	if (vm_flags & VM_UFFD_MISSING)
		reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
	if (vm_flags & VM_UFFD_WP)
		reg.mode |= UFFDIO_REGISTER_MODE_WP;
	if (vm_flags & VM_UFFD_MINOR)
		reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
	return uffd_kunit_ioctl(file, UFFDIO_REGISTER, &reg, sizeof(reg));
}

/* UFFDIO_COPY; *@copy gets the field the kernel writes back. */
long uffd_kunit_copy(struct file *file, unsigned long dst, unsigned long src,
		     unsigned long len, bool wp, s64 *copy)
{
	struct uffdio_copy arg = {
		.dst = dst, .src = src, .len = len,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};
	long ret = uffd_kunit_ioctl(file, UFFDIO_COPY, &arg, sizeof(arg));

	*copy = arg.copy;
	return ret;
}

/* UFFDIO_CONTINUE; *@mapped gets the field the kernel writes back. */
long uffd_kunit_continue(struct file *file, unsigned long start,
			 unsigned long len, u64 mode, s64 *mapped)
{
	struct uffdio_continue arg = {
		.range = { .start = start, .len = len }, .mode = mode,
	};
	long ret = uffd_kunit_ioctl(file, UFFDIO_CONTINUE, &arg, sizeof(arg));

	*mapped = arg.mapped;
	return ret;
}

/* The name of the implementation userfaultfd/mfill_impl selects. */
const char *uffd_kunit_mfill_impl(void)
{
	return mfill_impl_names[mfill_impl()];
}

/* The counter of userfaultfd/stats called @name, -ENOENT if none is. */
long uffd_kunit_mfill_stat(const char *name)
{
	int item = match_string(mfill_stat_names, NR_MFILL_STATS, name);

	return item < 0 ? item : mfill_stat_sum(item);
}

/* UFFDIO_ZEROPAGE; *@zeropage gets the field the kernel writes back. */
long uffd_kunit_zeropage(struct file *file, unsigned long start,
			 unsigned long len, s64 *zeropage)
{
	struct uffdio_zeropage arg = { .range = { .start = start, .len = len } };
	long ret = uffd_kunit_ioctl(file, UFFDIO_ZEROPAGE, &arg, sizeof(arg));

	*zeropage = arg.zeropage;
	return ret;
}

static struct vm_operations_struct uffd_kunit_vm_ops;

/*
 * Makes the VMA at @addr of current->mm use @ops as its memory type's
 * userfaultfd operations, the way a memory type written in Rust provides
 * them, keeping its other vm_operations. One VMA at a time.
 */
int uffd_kunit_set_uffd_ops(unsigned long addr, const struct vm_uffd_ops *ops)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	int ret = -ENOENT;

	mmap_write_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && vma->vm_ops) {
		vma_start_write(vma);
		uffd_kunit_vm_ops = *vma->vm_ops;
		uffd_kunit_vm_ops.uffd_ops = ops;
		vma->vm_ops = &uffd_kunit_vm_ops;
		ret = 0;
	}
	mmap_write_unlock(mm);
	return ret;
}
#endif /* CONFIG_USERFAULTFD_RUST_KUNIT_TEST */
